"""The ``metrics`` settings, and the HTTP endpoint's start and stop."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from drift.errors import ConfigError
from jobs.config import Settings, load_settings
from jobs.metrics.export import metrics_endpoint, serve_metrics
from jobs.metrics.settings import DEFAULT_PORT, MetricsSettings
from tests.jobs.metrics.scrape import parse, value


def test_defaults_listen_on_localhost_and_write_no_textfile():
    m = Settings().metrics
    assert (m.enabled, m.address, m.port, m.textfile_dir) == (True, "127.0.0.1", DEFAULT_PORT, None)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        pytest.param("port", 70000, "less than or equal to 65535", id="port-too-high"),
        pytest.param("port", -1, "greater than or equal to 0", id="port-negative"),
        pytest.param("address", "127.0.0.1:9108", "not an IP address or host name", id="address-with-port"),
        pytest.param("address", "", "not an IP address or host name", id="address-empty"),
        pytest.param("max_columns", 0, "greater than or equal to 1", id="no-columns"),
        pytest.param("colour", "red", "Extra inputs are not permitted", id="unknown-key"),
    ],
)
def test_bad_values_are_refused(field: str, bad: object, message: str):
    with pytest.raises(ValueError, match=message):
        MetricsSettings(**{field: bad})


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "localhost", "metrics.internal"])
def test_addresses_and_host_names_are_accepted(address: str):
    assert MetricsSettings(address=address).address == address


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "driftkeeper.yaml"
    config.write_text(f"metrics:\n  port: 9200\n  textfile_dir: {tmp_path / 'prom'}\n", encoding="utf-8")
    monkeypatch.setenv("DRIFTKEEPER__METRICS__PORT", "0")
    settings = load_settings(config)
    assert settings.metrics.port == 0 and settings.metrics.textfile_dir == tmp_path / "prom"


def test_port_0_takes_a_free_port_and_close_frees_it(database):
    settings = Settings(database={"url": database.url}, metrics={"port": 0})
    server = serve_metrics(database.session_factory, settings)
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        samples = parse(httpx.get(server.url, timeout=10).text)
        assert value(samples, "driftkeeper_collect_success") == 1
    finally:
        server.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url, timeout=2)


def test_a_port_in_use_is_a_config_error_and_the_daemon_runs_on_without_metrics(database, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(database={"url": database.url}, metrics={"port": port})
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_metrics(database.session_factory, settings)
        caplog.set_level(logging.ERROR)
        with metrics_endpoint(database.session_factory, settings) as endpoint:
            assert endpoint is None
    assert any("running without /metrics" in r.getMessage() for r in caplog.records)
