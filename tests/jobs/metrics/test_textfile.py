"""One-shot ``driftkeeper run`` writes node_exporter's textfile: atomically, parseable, never changing the exit code."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.metrics.export import TEXTFILE_NAME, write_textfile
from tests.jobs.cli.test_cli_run import invoke
from tests.jobs.metrics.data import WEEK_END, checked_week
from tests.jobs.metrics.scrape import parse, value


def _config(path: Path, database_url: str, settings: Any, **metrics: Any) -> Path:
    config = {
        "database": {"url": database_url},
        "paths": {k: str(v) for k, v in settings.paths.model_dump().items()},
        "metrics": metrics,
        "models": [settings.models[0].model_dump(mode="json")],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_run_check_writes_a_textfile_that_parses(database, tmp_path):
    settings, _ = checked_week(database, tmp_path)
    folder = tmp_path / "textfiles" / "new"  # created when missing
    config = _config(tmp_path / "driftkeeper.yaml", database.url, settings, textfile_dir=str(folder))
    result = invoke(config, "run", "check", "-m", "pets", "--window", "7d", "--end", WEEK_END.isoformat())
    assert result.exit_code == 0, result.output
    written = folder / TEXTFILE_NAME
    assert sorted(p.name for p in folder.iterdir()) == [TEXTFILE_NAME]  # no temporary file left behind
    assert stat.S_IMODE(written.stat().st_mode) == 0o644  # node_exporter runs as another user
    samples = parse(written.read_text(encoding="utf-8"))
    assert value(samples, "driftkeeper_collect_success") == 1
    assert value(samples, "driftkeeper_column_drifted", model="pets", version="1", column="brightness") == 1
    assert value(samples, "driftkeeper_champion_version", model="pets") == 1
    assert not any(name.startswith("process_") for name in samples)  # a one-shot process says nothing of itself


@pytest.mark.parametrize("fail_on_drift", [False, True], ids=["plain", "fail-on-drift"])
def test_a_textfile_that_cannot_be_written_is_logged_and_keeps_the_exit_code(
    database, tmp_path, caplog, fail_on_drift: bool
):
    settings, _ = checked_week(database, tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    args = ["run", "check", "-m", "pets", "--window", "7d", "--end", WEEK_END.isoformat()]
    args += ["--fail-on-drift"] if fail_on_drift else []
    plain = invoke(_config(tmp_path / "plain.yaml", database.url, settings), *args)
    caplog.set_level(logging.ERROR)
    broken = invoke(_config(tmp_path / "broken.yaml", database.url, settings, textfile_dir=str(blocker)), *args)
    assert broken.exit_code == plain.exit_code == (3 if fail_on_drift else 0), broken.output
    assert any("could not write the textfile" in r.getMessage() for r in caplog.records)


def test_a_failed_write_leaves_the_previous_file_whole(database, tmp_path, monkeypatch):
    settings, _ = checked_week(database, tmp_path, textfile_dir=tmp_path / "prom")
    path = write_textfile(database.session_factory, settings)
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("jobs.metrics.export.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_textfile(database.session_factory, settings)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == [TEXTFILE_NAME]
