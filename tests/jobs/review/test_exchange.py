"""Label Studio export and import (idempotent), CSV, and the class-folder tree; the CLI."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest
import typer
from typer.testing import CliRunner

from jobs.cli.context import AppContext
from jobs.cli.review import review_app
from jobs.review.exchange import export_queue, import_label_studio
from jobs.review.queue import progress, review_queue
from storage.models import Label, PredictionLog
from tests.jobs.review.data import T0, Pred, settings_for, store

NOW = T0 + timedelta(days=20)
PREDS = [Pred("a", 1, 0.95), Pred("b", 2, 0.5, predicted="dog"), Pred("c", 3, 0.6)]


@pytest.fixture
def seeded(database, tmp_path):
    roots = tmp_path / "images"
    roots.mkdir()
    settings = settings_for(database.url, image_roots=[str(roots)])
    store(database.session_factory, PREDS, flags=[("a", "confident_outlier", 2.0, None)])
    return database.session_factory, settings, roots


def annotated(tasks: list[dict], labels: dict[str, str]) -> list[dict]:
    """What Label Studio exports once the tasks are annotated."""
    out = []
    for n, task in enumerate(tasks, start=1):
        pid = task["data"]["driftkeeper_prediction_id"]
        annotations = []
        if pid in labels:
            annotations = [
                {
                    "id": 100 + n,
                    "completed_by": {"id": 1, "email": "ann@example.com"},
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [labels[pid]]},
                        }
                    ],
                    "was_cancelled": False,
                    "created_at": "2026-11-25T10:00:00.000000Z",
                    "updated_at": "2026-11-25T10:00:00.000000Z",
                }
            ]
        out.append({"id": n, "data": task["data"], "annotations": annotations, "predictions": task["predictions"]})
    return out


def test_label_studio_round_trip_is_idempotent(seeded, tmp_path):
    factory, settings, _ = seeded
    out = tmp_path / "tasks.json"
    result = export_queue(factory, settings, "pets", "label-studio", out)
    tasks = json.loads(out.read_text())
    assert result.items == 3 and [t["data"]["driftkeeper_prediction_id"] for t in tasks] == ["a", "c", "b"]
    first = tasks[0]
    assert first["data"]["image"] == "images/a.png" and first["data"]["driftkeeper_model"] == "pets"
    assert first["data"]["driftkeeper_kind"] == "confident_outlier"
    prediction = first["predictions"][0]
    assert prediction["model_version"] == "1" and prediction["score"] == 0.95
    assert prediction["result"] == [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}
    ]
    assert '<Choice value="other"/>' in out.with_suffix(".label_config.xml").read_text()

    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotated(tasks, {"a": "dog", "b": "dog", "c": "zebra"})))
    imported = import_label_studio(factory, settings, "pets", export)
    assert (imported.stored, imported.unchanged) == (2, 0)
    assert len(imported.rejected) == 1 and "zebra" in imported.rejected[0]
    with factory() as s:
        labels = {r.prediction_id: r.label for r in s.query(Label)}
    assert labels == {"a": "dog", "b": "dog"}
    again = import_label_studio(factory, settings, "pets", export)
    assert (again.stored, again.unchanged) == (0, 2)
    assert [i.prediction_id for i in review_queue(factory, settings, "pets", now=NOW).items] == ["c"]
    p = progress(factory, settings, "pets", now=NOW)
    assert (p.done, p.agreement) == (2, 0.5)


def test_csv_export(seeded, tmp_path):
    factory, settings, _ = seeded
    out = tmp_path / "queue.csv"
    assert export_queue(factory, settings, "pets", "csv", out, kind="low_confidence").items == 2
    rows = list(csv.DictReader(out.open()))
    assert [r["prediction_id"] for r in rows] == ["c", "b"]
    assert rows[1]["kind"] == "low_confidence" and rows[1]["predicted_label"] == "dog"
    assert rows[1]["week"] == "2026-W45" and rows[1]["slice_device"] == "low"


def test_folder_export_is_a_class_tree_of_images_inside_the_roots(database, tmp_path):
    roots = tmp_path / "images"
    roots.mkdir()
    (roots / "a.png").write_bytes(b"png-a")
    (roots / "b.png").write_bytes(b"png-b")
    settings = settings_for(database.url, image_roots=[str(roots)])
    preds = [Pred("a", 1, 0.95), Pred("b", 2, 0.5), Pred("c", 3, 0.6)]
    store(database.session_factory, preds, labels=[("a", "dog"), ("b", "cat"), ("c", "cat")])
    with database.session_factory.begin() as s:  # absolute paths, as an app would log them
        for row in s.query(PredictionLog):
            row.input_uri = str(roots / f"{row.prediction_id}.png") if row.prediction_id != "c" else "/etc/passwd"
    result = export_queue(database.session_factory, settings, "pets", "folders", tmp_path / "tree")
    assert (result.items, result.files, result.missing) == (3, 2, 1)
    assert (tmp_path / "tree" / "dog" / "a.png").read_bytes() == b"png-a"
    assert (tmp_path / "tree" / "cat" / "b.png").read_bytes() == b"png-b"
    assert sorted(p.name for p in (tmp_path / "tree").rglob("*") if p.is_file()) == ["a.png", "b.png"]
    reviewed = export_queue(database.session_factory, settings, "pets", "folders", tmp_path / "r", reviewed_only=True)
    assert reviewed.items == 0


def cli(factory_url: str, tmp_path) -> tuple[typer.Typer, str]:
    config = tmp_path / "driftkeeper.yaml"
    config.write_text(
        f"database:\n  url: {factory_url!r}\nmodels:\n  - name: pets\n    class_labels: [cat, dog, other]\n"
        "    features: [{name: device, type: categorical}]\n"
    )
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(config_path=config)

    root.add_typer(review_app, name="review")
    return root, str(config)


def test_the_cli_exports_imports_and_shows_progress(database, tmp_path):
    store(database.session_factory, PREDS, flags=[("a", "confident_outlier", 2.0, None)])
    app, _ = cli(database.url, tmp_path)
    runner = CliRunner()
    out = tmp_path / "tasks.json"
    done = runner.invoke(app, ["review", "export", "-m", "pets", "--out", str(out), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["items"] == 3
    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotated(json.loads(out.read_text()), {"a": "cat"})))
    for stored in (1, 0):
        done = runner.invoke(app, ["review", "import", "-m", "pets", str(export), "--json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["stored"] == stored
    done = runner.invoke(app, ["review", "progress", "-m", "pets", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) | {"per_minute": None} == {
        "model": "pets",
        "done": 1,
        "skipped": 0,
        "left": 2,
        "per_minute": None,
        "agreement": 1.0,
    }
    done = runner.invoke(app, ["review", "export", "-m", "pets", "--out", str(out), "--format", "bogus"])
    assert done.exit_code == 2
