"""Which engine computes a model's days, and the quarantine of what they rejected.

:func:`external_days` gives the engine of a model whose predictions are not ingested (a lake
source, a SQL source with ``compute: pushdown``), None for the others. The check passes it to
:func:`jobs.check.windows.window_profile` and, in its write transaction, stores the rejected
rows' samples with :func:`store_rejected`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from jobs.config import LakeSource, ModelSettings, Settings, SqlSource
from jobs.lake.base import ExternalDays, RejectTally
from storage import repository
from storage.models import Model, QuarantinedRow

log = logging.getLogger(__name__)


def is_external(model: ModelSettings) -> bool:
    """Whether the model's predictions are profiled where they lie (never ingested)."""
    source = model.predictions
    return isinstance(source, LakeSource) or (isinstance(source, SqlSource) and source.compute == "pushdown")


def external_days(session: Session, settings: Settings, model: ModelSettings, model_row: Model) -> ExternalDays | None:
    """The engine computing ``model``'s day states, or None where its rows are ingested."""
    source = model.predictions
    if not is_external(model):
        return None
    known = repository.known_versions(session, model_row.id)
    tolerance = settings.ingest.probability_tolerance
    if isinstance(source, SqlSource):
        from jobs.pushdown.engine import PushdownDays

        return PushdownDays(model, source, known, tolerance)
    assert isinstance(source, LakeSource)
    if source.compute == "spark":
        from jobs.lake.spark import SparkLake

        return SparkLake(model, source, known, tolerance, settings.spark)
    from jobs.lake.local import LocalLake

    return LocalLake(model, source, known, tolerance)


def source_name(model: ModelSettings) -> str:
    source = model.predictions
    if isinstance(source, LakeSource):
        return f"lake:{source.path}"
    if isinstance(source, SqlSource):
        return f"sql:{source.table or 'query'}"
    return "external"


def store_rejected(session: Session, model: ModelSettings, model_id: int, rejected: dict[datetime, RejectTally]) -> int:
    """Store the kept samples of rejected rows in the quarantine (inside the caller's transaction).

    Every rejected row is counted (logged per reason); at most ``SAMPLE_PER_REASON`` of each
    reason and day are kept, as the rows themselves stay in the source. Returns the rows counted.
    """
    name = source_name(model)
    total = 0
    for day, tally in sorted(rejected.items()):
        total += tally.n_rows
        for (field, reason), n in sorted(tally.counts.items(), key=lambda kv: -kv[1]):
            log.warning("%s %s: %d rows rejected (%s: %s)", model.name, f"{day:%Y-%m-%d}", n, field, reason)
        positions = [r.position for r in tally.samples]
        already = repository.quarantined_positions(session, model_id, "predictions", name, positions)
        session.add_all(
            QuarantinedRow(
                model_id=model_id,
                stream="predictions",
                source=name,
                position=r.position,
                field=r.field,
                reason=r.reason,
                raw=r.raw,
            )
            for r in tally.samples
            if r.position not in already
        )
    return total
