"""The review queue out and labels back: Label Studio tasks, CSV, and a class-folder tree of images.

* Label Studio: one task per queued prediction, ``data`` with the image URL and the driftkeeper
  ids, ``predictions`` with the model's choice (``model_version``, ``score``: its confidence).
  :func:`import_label_studio` reads Label Studio's JSON export back: each task's latest
  annotation that was not cancelled becomes a label (source ``label-studio``), idempotently.
* CSV: the same queued predictions, one row each, with a column for the current label.
* Folders: labelled predictions as ``<dir>/<class>/<prediction id><suffix>``, the layout of
  Keras' ``image_dataset_from_directory``; images are hard-linked (copied across file systems)
  from inside the model's ``image_roots`` only.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import BadInputError, ValidationError
from jobs.config import ModelSettings, Settings
from jobs.images import within_roots
from jobs.report.weeks import is_iso_week, week_window
from jobs.review.queue import Decision, ReviewItem, ReviewKind, review_queue, review_settings, store_decisions
from storage import review_decisions as decisions_store
from storage.repository import get_model

FROM_NAME, TO_NAME = "label", "image"  # the control and object tags of the labelling config
ID_PREFIX = "driftkeeper_"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExportFormat(StrEnum):
    LABEL_STUDIO = "label-studio"
    CSV = "csv"
    FOLDERS = "folders"


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    path: Path
    format: ExportFormat
    items: int
    files: int = 0  # images written (folders)
    missing: int = 0  # images not found inside image_roots (folders)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": str(self.format),
            "items": self.items,
            "files": self.files,
            "missing": self.missing,
        }


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    stored: int  # new labels (or skips) stored
    unchanged: int  # annotations imported before
    rejected: tuple[str, ...]  # why each unusable task was not imported

    def to_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "unchanged": self.unchanged, "rejected": list(self.rejected)}


def queued_items(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    *,
    week: str | None = None,
    kind: ReviewKind | None = None,
    per_page: int = 5000,
) -> Iterator[ReviewItem]:
    """Every item of the queue, best first."""
    page = 0
    while True:
        result = review_queue(session_factory, settings, model, week=week, kind=kind, page=page, per_page=per_page)
        yield from result.items
        if (page + 1) * per_page >= result.total:
            return
        page += 1


def rejected_items(
    session_factory: sessionmaker[Session], model: ModelSettings, *, week: str | None = None
) -> list[ReviewItem]:
    """The predictions whose mask a reviewer rejected and that got no label since, to be drawn
    again in a labelling tool (``review export --kind relabel``)."""
    from jobs.report.weeks import iso_week
    from storage import relabel, repository

    with session_factory() as session:
        rows = relabel.rejected_masks(session, repository.get_model(session, model.name).id)
    items = [
        ReviewItem(
            prediction_id=r.prediction_id,
            kind=ReviewKind.RELABEL,
            ts=r.ts,
            week=iso_week(r.ts),
            model_version=r.model_version,
            predicted_label=r.predicted_label,
            confidence=r.confidence,
            score=None,
            input_uri=r.input_uri,
            mask_uri=r.mask_uri,
            true_label=None,
        )
        for r in rows
    ]
    return [i for i in items if week is None or i.week == week]


def image_url(model: ModelSettings, uri: str | None, prefix: str | None) -> str | None:
    """The URL Label Studio loads the image from: ``prefix`` + the path within its image root."""
    if uri is None or prefix is None:
        return uri
    path = within_roots(uri, model.image_roots)
    if path is None:
        return uri
    for root in model.image_roots:
        try:
            return prefix + path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
    return uri


def label_studio_task(model: ModelSettings, item: ReviewItem, prefix: str | None) -> dict[str, Any]:
    """One Label Studio task: the image, driftkeeper's ids, the model's prediction as a pre-annotation."""
    return {
        "data": {
            "image": image_url(model, item.input_uri, prefix),
            f"{ID_PREFIX}model": model.name,
            f"{ID_PREFIX}prediction_id": item.prediction_id,
            f"{ID_PREFIX}kind": str(item.kind),
            f"{ID_PREFIX}week": item.week,
            f"{ID_PREFIX}confidence": item.confidence,
            f"{ID_PREFIX}score": item.score,
        },
        "predictions": [
            {
                "model_version": str(item.model_version),
                "score": item.confidence,
                "result": [
                    {
                        "from_name": FROM_NAME,
                        "to_name": TO_NAME,
                        "type": "choices",
                        "value": {"choices": [item.predicted_label]},
                    }
                ],
            }
        ],
    }


def label_config(model: ModelSettings) -> str:
    """The Label Studio labelling config the tasks are written for (an image and one choice)."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in model.class_labels)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


CSV_COLUMNS = (
    "prediction_id",
    "kind",
    "week",
    "ts",
    "model_version",
    "predicted_label",
    "confidence",
    "score",
    "true_label",
    "input_uri",
    "mask_uri",
)


def export_queue(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    fmt: ExportFormat | str,
    out: Path,
    *,
    week: str | None = None,
    kind: ReviewKind | None = None,
    reviewed_only: bool = False,
) -> ExportResult:
    """Write the queue (Label Studio, CSV) or the labelled images (folders) to ``out``."""
    fmt = ExportFormat(fmt)
    m = settings.model(model)
    if fmt == ExportFormat.FOLDERS:
        return export_folders(session_factory, m, out, week=week, reviewed_only=reviewed_only)
    if kind == ReviewKind.RELABEL:  # not a queue of the page: the masks rejected there
        items = rejected_items(session_factory, m, week=week)
    else:
        items = list(queued_items(session_factory, settings, model, week=week, kind=kind))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ExportFormat.LABEL_STUDIO:
        prefix = review_settings(settings).image_url_prefix
        tasks = [label_studio_task(m, item, prefix) for item in items]
        out.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
        out.with_suffix(".label_config.xml").write_text(label_config(m), encoding="utf-8")
    else:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*CSV_COLUMNS, *(f"slice_{f}" for f in m.categorical_features)])
            for item in items:
                row = item.to_dict()
                writer.writerow(
                    [row[c] if row[c] is not None else "" for c in CSV_COLUMNS]
                    + [item.slice.get(f, "") for f in m.categorical_features]
                )
    return ExportResult(path=out, format=fmt, items=len(items))


def _safe(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned or "_"


def export_folders(
    session_factory: sessionmaker[Session],
    model: ModelSettings,
    out: Path,
    *,
    week: str | None = None,
    reviewed_only: bool = False,
) -> ExportResult:
    """Labelled predictions' images as ``out/<class>/<prediction id><suffix>``."""
    start = end = None
    if week is not None:
        if not is_iso_week(week):
            raise ValidationError(f"week {week!r} is not an ISO week like 2026-W38")
        start, end = week_window(week)
    with session_factory() as session:
        rows = decisions_store.labelled_rows(
            session, get_model(session, model.name).id, start=start, end=end, reviewed_only=reviewed_only
        )
    files = missing = 0
    for prediction_id, label, uri in rows:
        source = within_roots(uri, model.image_roots)
        if source is None:
            missing += 1
            continue
        folder = out / _safe(label)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (_safe(prediction_id) + source.suffix.lower())
        if target.exists():
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        files += 1
    return ExportResult(path=out, format=ExportFormat.FOLDERS, items=len(rows), files=files, missing=missing)


def _choice(annotation: dict[str, Any]) -> str | None:
    for result in annotation.get("result") or []:
        if isinstance(result, dict) and result.get("type") == "choices":
            choices = (result.get("value") or {}).get("choices") or []
            if choices:
                return str(choices[0])
    return None


def _when(annotation: dict[str, Any]) -> datetime | None:
    text = annotation.get("updated_at") or annotation.get("created_at")
    if not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _reviewer(annotation: dict[str, Any], default: str) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id") or default)[:200]
    return default if who is None else f"{default}:{who}"[:200]


def read_label_studio(path: Path) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(str(path), f"not a readable Label Studio JSON export: {exc}") from exc
    if not isinstance(tasks, list):
        raise BadInputError(str(path), "a Label Studio JSON export is a list of tasks")
    return tasks


def import_label_studio(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    path: Path,
    *,
    reviewer: str | None = None,
) -> ImportResult:
    """Store each task's latest annotation as a label; an annotation imported before is left alone."""
    m = settings.model(model)
    default = reviewer or review_settings(settings).reviewer
    decisions: list[Decision] = []
    rejected: list[str] = []
    for position, task in enumerate(read_label_studio(path)):
        where = f"task {task.get('id', position) if isinstance(task, dict) else position}"
        data = task.get("data") if isinstance(task, dict) else None
        data = data if isinstance(data, dict) else {}
        pid = data.get(f"{ID_PREFIX}prediction_id")
        if not pid:
            rejected.append(f"{where}: no {ID_PREFIX}prediction_id in its data")
            continue
        if data.get(f"{ID_PREFIX}model", model) != model:
            rejected.append(f"{where}: exported for model {data[f'{ID_PREFIX}model']!r}, not {model!r}")
            continue
        done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not done:
            continue  # not annotated yet
        annotation = max(done, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        label, when = _choice(annotation), _when(annotation)
        if label is None or when is None:
            rejected.append(f"{where}: its annotation has no choice or no time")
            continue
        if label not in m.class_labels:
            rejected.append(f"{where}: unknown label {label!r} (allowed: {', '.join(m.class_labels)})")
            continue
        external = f"label-studio:{task.get('id', '')}:{annotation.get('id', '')}:{when.isoformat()}"
        decisions.append(
            Decision(
                prediction_id=str(pid),
                label=label,
                reviewer=_reviewer(annotation, default),
                decided_at=when,
                source="label-studio",
                external_id=external,
            )
        )
    with session_factory.begin() as session:
        model_id = get_model(session, model).id
        known = decisions_store.known_external_ids(
            session, model_id, [d.external_id for d in decisions if d.external_id]
        )
        new = [d for d in decisions if d.external_id not in known]
        stored_ids = set(decisions_store.targets(session, model_id, [d.prediction_id for d in new]))
        rejected += [
            f"prediction {d.prediction_id!r}: not stored for model {model}"
            for d in new
            if d.prediction_id not in stored_ids
        ]
        stored = store_decisions(session, settings, m, [d for d in new if d.prediction_id in stored_ids])
    return ImportResult(stored=stored, unchanged=len(decisions) - len(new), rejected=tuple(rejected))
