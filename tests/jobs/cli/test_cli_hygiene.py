"""What a new user hits first: where -c goes, read-only commands, which config, environment typos."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from jobs.cli.commands import app
from jobs.cli.options import hoist_config

READ_ONLY = [
    pytest.param(["status"], id="status"),
    pytest.param(["quarantine", "list"], id="quarantine-list"),
    pytest.param(["models", "list", "-m", "m"], id="models-list"),
    pytest.param(["models", "show", "-m", "m", "--version", "1"], id="models-show"),
    pytest.param(["errors", "-m", "m"], id="errors"),
    pytest.param(["report", "-m", "m"], id="report"),
]
CONFIG = "models:\n  - name: m\n    class_labels: [a, b]\n"


def write_config(path, url: str) -> str:
    path.write_text(f"database:\n  url: {url!r}\n" + CONFIG)
    return str(path)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["status", "-c", "a.yaml"], ["-c", "a.yaml", "status"], id="after"),
        pytest.param(["-c", "a.yaml", "status"], ["-c", "a.yaml", "status"], id="before"),
        pytest.param(
            ["models", "list", "--config=b.yaml", "-m", "x"],
            ["--config=b.yaml", "models", "list", "-m", "x"],
            id="equals",
        ),
        pytest.param(["run", "check", "--", "-c", "x"], ["run", "check", "--", "-c", "x"], id="after-double-dash"),
    ],
)
def test_the_config_option_is_hoisted_to_the_root(args, expected):
    assert hoist_config(args) == expected


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_works_before_or_after_the_subcommand(runner, workdir, where):
    config = write_config(workdir / "elsewhere.yaml", f"sqlite:///{workdir / 'db.sqlite'}")
    assert runner.invoke(app, ["-c", config, "db", "upgrade"]).exit_code == 0
    args = ["-c", config, "status", "--json"] if where == "before" else ["status", "--json", "-c", config]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "db.sqlite" in result.stdout


@pytest.mark.parametrize("args", READ_ONLY)
def test_read_only_commands_never_create_a_sqlite_database(runner, workdir, args):
    (workdir / "driftkeeper.yaml").write_text(CONFIG)  # the default URL: ./var/driftkeeper.db
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "no driftkeeper database at sqlite:///var/driftkeeper.db: run `driftkeeper db upgrade`" in result.output
    assert not (workdir / "var").exists()


@pytest.mark.parametrize("args", READ_ONLY)
def test_read_only_commands_never_create_tables(runner, workdir, database_url, args):
    config = write_config(workdir / "driftkeeper.yaml", database_url)
    if database_url.startswith("sqlite"):
        create_engine(database_url).connect().close()  # an empty file
    result = runner.invoke(app, [*args, "-c", config])
    assert result.exit_code == 1
    assert "no driftkeeper database at" in result.output and "driftkeeper db upgrade" in result.output
    assert inspect(create_engine(database_url)).get_table_names() == []


def test_a_mistyped_sqlite_path_is_not_a_new_database(runner, workdir):
    config = write_config(workdir / "driftkeeper.yaml", f"sqlite:///{workdir / 'typo' / 'driftkeepr.db'}")
    result = runner.invoke(app, ["ingest", "-c", config])
    assert result.exit_code == 1
    assert "no driftkeeper database at" in result.output and "driftkeepr.db" in result.output
    assert not (workdir / "typo").exists()


def test_a_bare_command_says_which_config_it_uses(runner, workdir):
    result = runner.invoke(app, ["status"])
    assert "using no config file (-c PATH, $DRIFTKEEPER_CONFIG, ./driftkeeper.yaml): the defaults" in result.stderr
    (workdir / "driftkeeper.yaml").write_text(CONFIG)
    result = runner.invoke(app, ["status"])
    assert "using config" in result.stderr and "driftkeeper.yaml" in result.stderr


def test_an_explicit_config_is_not_announced(runner, workdir):
    config = write_config(workdir / "mine.yaml", f"sqlite:///{workdir / 'db.sqlite'}")
    assert "using" not in runner.invoke(app, ["status", "-c", config]).stderr


def test_an_unknown_environment_override_is_named_as_a_variable(runner, workdir, monkeypatch):
    (workdir / "driftkeeper.yaml").write_text(CONFIG)
    monkeypatch.setenv("DRIFTKEEPER__DATABASE__ULR", "sqlite:///x.db")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "DRIFTKEEPER__DATABASE__ULR (environment variable, key database.ulr): unknown key" in result.output


def test_a_database_error_is_one_line_with_the_password_masked(runner, workdir, monkeypatch):
    monkeypatch.setenv("DRIFTKEEPER__DATABASE__URL", "postgresql+psycopg://dk:hunter2@127.0.0.1:1/none")
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "postgresql+psycopg://dk:***@127.0.0.1:1/none" in error[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("variable", ["DRIFTKEEPER__DATABSE__URL", "DRIFTKEEPER__DATABASE_URL"])
def test_an_environment_variable_naming_no_section_is_an_error(runner, workdir, monkeypatch, variable):
    """Otherwise the default database would quietly stand in for the one meant."""
    monkeypatch.setenv(variable, "postgresql+psycopg://u:hunter2@127.0.0.1:1/prod")
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1
    assert f"environment variable {variable}: no configuration section" in result.output
    assert "did you mean DRIFTKEEPER__DATABASE__" in result.output
    assert "hunter2" not in result.output and not (workdir / "var").exists()
