"""The rows the label-dependent findings read: stored ones, or those of predictions kept outside.

A lake or push-down model's predictions are never stored here; its labels are (they are
ingested like any model's). The findings that need rows (confidently wrong, realized
performance, the labels and URIs of flagged outliers) ask the model's engine for just the
labelled rows of the window (:meth:`~jobs.lake.base.ExternalDays.rows_by_id`): the label ids
go to the engine, only the matching rows come back.

Labels given before the window starts are not looked for: a label comes after its prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from jobs.check.frames import layout
from jobs.config import ModelSettings
from storage.models import Model
from storage.windows import iter_rows, labels_since

if TYPE_CHECKING:
    from jobs.lake.base import ExternalDays

Labelled = tuple[np.ndarray, ...]  # confidence, label, predicted, id, input URI, predicted mask, true mask


def external_labelled(
    session: Session,
    external: ExternalDays,
    model_id: int,
    version: int,
    start: datetime,
    end: datetime,
    flagged_ids: Sequence[str] = (),
) -> tuple[Labelled | None, dict[str, str | None]]:
    """The window's labelled rows of ``version`` as :func:`stored_labelled` gives stored ones (in
    prediction id order; None when none is labelled), and the input URIs of ``flagged_ids``,
    found in one call to the engine."""
    labels: dict[str, str] = {}
    for part in labels_since(session, model_id, start):
        labels |= part
    if not labels and not flagged_ids:
        return None, {}
    rows = external.rows_by_id(version, start, end, [*labels, *flagged_ids])
    flagged = set(flagged_ids)
    uris = {
        str(p): u for p, u in zip(rows.prediction_id.tolist(), rows.input_uri.tolist(), strict=True) if p in flagged
    }
    pick = np.array([str(p) in labels for p in rows.prediction_id], dtype=bool)
    if not pick.any():
        return None, uris
    ids = rows.prediction_id[pick]
    order = np.argsort(ids.astype(str), kind="stable")
    ids = ids[order]
    none = np.full(len(ids), None, dtype=object)
    truth = np.array([labels[str(i)] for i in ids], dtype=object)
    labelled = (rows.confidence[pick][order], truth, rows.predicted_label[pick][order], ids)
    return (*labelled, rows.input_uri[pick][order], none, none), uris


def stored_labelled(
    session: Session, model: ModelSettings, model_row: Model, version: int, start: datetime, end: datetime
) -> Labelled | None:
    """The window's labelled rows of ``version`` from driftkeeper's own tables."""
    parts: list[Labelled] = [
        (
            rows.confidence,
            _or_none(rows.label, len(rows)),
            rows.predicted_label,
            rows.prediction_id,
            rows.input_uri,
            _or_none(rows.mask_uri, len(rows)),
            _or_none(rows.true_mask_uri, len(rows)),
        )
        for rows in iter_rows(
            session, model_row.id, layout(model), version=version, start=start, end=end, labelled_only=True
        )
    ]
    return tuple(np.concatenate(c) for c in zip(*parts, strict=True)) if parts else None


def _or_none(values: np.ndarray | None, n: int) -> np.ndarray:
    return values if values is not None else np.full(n, None, dtype=object)
