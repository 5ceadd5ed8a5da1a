"""Publishing the metrics: ``/metrics`` over HTTP (the daemon) and node_exporter's textfile (one-shot runs).

:func:`serve_metrics` starts prometheus_client's HTTP server in a daemon thread on
``metrics.address:metrics.port`` (port 0: a free one) and returns a :class:`MetricsServer` that
knows the port it got; :func:`metrics_endpoint` wraps it for the daemon's lifetime.
:func:`write_textfile` writes ``<metrics.textfile_dir>/driftkeeper.prom`` atomically: a temporary
file in the same folder (its name does not end in ``.prom``, so the collector never reads it
half-written), flushed to disk, then renamed over the old one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import generate_latest, start_http_server
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ConfigError
from jobs.config import Settings
from jobs.metrics.collector import build_registry

log = logging.getLogger(__name__)

TEXTFILE_NAME = "driftkeeper.prom"


@dataclass(frozen=True, kw_only=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    address: str
    port: int
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(session_factory: sessionmaker[Session], settings: Settings) -> MetricsServer:
    """Serve ``/metrics`` on the configured address; ConfigError when it cannot listen there."""
    config = settings.metrics
    registry = build_registry(session_factory, settings, process=True)
    try:
        server, thread = start_http_server(config.port, addr=config.address, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics: cannot listen on {config.address}:{config.port} ({exc.strerror or exc}); "
            "set metrics.port (0: any free port) or metrics.enabled: false"
        ) from exc
    return MetricsServer(address=config.address, port=int(server.server_port), server=server, thread=thread)


@contextlib.contextmanager
def metrics_endpoint(session_factory: sessionmaker[Session], settings: Settings) -> Iterator[MetricsServer | None]:
    """``/metrics`` while the block runs, when ``metrics.enabled``; None when disabled or when it
    cannot listen (logged as an error: the daemon's jobs matter more than its metrics)."""
    if not settings.metrics.enabled:
        log.info("metrics: /metrics disabled (metrics.enabled: false)")
        yield None
        return
    try:
        endpoint = serve_metrics(session_factory, settings)
    except ConfigError as exc:
        log.error("%s; running without /metrics", exc)
        yield None
        return
    log.info("metrics: serving %s", endpoint.url)
    try:
        yield endpoint
    finally:
        endpoint.close()
        log.info("metrics: stopped serving %s", endpoint.url)


def write_textfile(session_factory: sessionmaker[Session], settings: Settings, path: Path | None = None) -> Path:
    """Write the metrics in the text format to ``path`` (default ``<metrics.textfile_dir>/driftkeeper.prom``),
    atomically; the path written. The folder is created if missing; the file is readable by all (0644),
    as node_exporter usually runs as another user."""
    if path is None:
        if settings.metrics.textfile_dir is None:
            raise ConfigError("metrics.textfile_dir is not set: no textfile to write")
        path = settings.metrics.textfile_dir / TEXTFILE_NAME
    data = generate_latest(build_registry(session_factory, settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
