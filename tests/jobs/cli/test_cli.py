from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jobs.cli.commands import app


def test_init_writes_a_config_that_loads(runner, workdir):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    from jobs.config import load_settings

    settings = load_settings()
    assert settings.models[0].name == "digits"
    assert runner.invoke(app, ["init"]).exit_code == 1  # exists, no --force


def test_a_bad_config_names_the_file_and_the_key(runner, workdir):
    (workdir / "driftkeeper.yaml").write_text("models:\n  - name: m\n    class_labels: [a, b]\n    task: regression\n")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "driftkeeper.yaml" in result.output and "models[m].task" in result.output
    assert "'classification' or 'segmentation'" in result.output


def test_an_empty_column_list_is_a_config_error(runner, workdir):
    (workdir / "driftkeeper.yaml").write_text(
        "models:\n  - name: m\n    class_labels: [a, b]\n    embedding: {columns: []}\n"
    )
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "models[m].embedding.columns" in result.output and "at least 1 item" in result.output


def test_status_json_on_a_fresh_database(runner, workdir):
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == {"database": "sqlite:///var/driftkeeper.db", "models": [], "recent_runs": []}
    assert (workdir / "var" / "driftkeeper.db").exists()


def test_secrets_in_database_url_are_not_printed(runner, workdir, monkeypatch):
    monkeypatch.setenv("DRIFTKEEPER__DATABASE__URL", "postgresql+psycopg://u:hunter2@127.0.0.1:1/none")
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 1
    assert "hunter2" not in result.output and "***" in result.output


def test_usage_errors_exit_2(runner, workdir):
    assert runner.invoke(app, ["ingest", "--stream", "nonsense"]).exit_code == 2
    assert runner.invoke(app, ["check"]).exit_code == 2


@pytest.mark.parametrize("shift, code", [(0.0, 0), (0.8, 3)], ids=["same", "shifted"])
def test_compare_files_json_and_exit_code(runner, workdir, shift, code):
    rng = np.random.default_rng(1)
    pd.DataFrame({"x": rng.normal(size=400), "c": rng.choice(["a", "b", "c"], 400)}).to_csv("ref.csv", index=False)
    pd.DataFrame({"x": rng.normal(size=400) + shift, "c": rng.choice(["a", "b", "c"], 400)}).to_parquet("cur.parquet")
    result = runner.invoke(
        app, ["compare", "--reference", "ref.csv", "--current", "cur.parquet", "--json", "--fail-on-drift"]
    )
    assert result.exit_code == code, result.output
    data = json.loads(result.stdout)
    assert data["drifted"] is bool(code)
    assert {c["column"]: c["method"] for c in data["columns"]} == {"x": "ks", "c": "chisquare_2s"}


def test_compare_names_a_missing_file(runner, workdir):
    result = runner.invoke(app, ["compare", "--reference", "nope.csv", "--current", "nope2.csv"])
    assert result.exit_code == 1 and "nope.csv: file not found" in result.output
