"""The ``errors`` listing: the window's most confidently wrong predictions and confident outliers.

Computed as the check computes them (same pass, same findings), with a larger top-K, and
without storing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from jobs.check.findings import compute_findings, findings_inputs
from jobs.check.flagged import Flagged
from jobs.check.reference import load_reference
from jobs.check.windows import window_profile
from jobs.config import Settings
from jobs.lake.engine import external_days
from storage import repository
from storage.windows import versions_in_window


@dataclass(frozen=True, kw_only=True)
class VersionFlagged:
    version: int
    flagged: tuple[Flagged, ...]


def flagged_in_window(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    start: datetime,
    end: datetime,
    *,
    top_k: int = 20,
) -> list[VersionFlagged]:
    """Per version that logged in [start, end): its flagged predictions, ``top_k`` of each kind."""
    model = settings.model(model_name)
    out: list[VersionFlagged] = []
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        external = external_days(session, settings, model, model_row)  # a lake or push-down source
        versions = external.versions(start, end) if external else versions_in_window(session, model_row.id, start, end)
        for version in versions:
            reference, reference_row = load_reference(session, model_row, version)
            inputs, reference_labelled = findings_inputs(
                session, model, model_row, version, reference, reference_row, top_k=top_k
            )
            window = window_profile(
                session, model, model_row, version, reference, start, end, end, inputs, external=external
            )
            findings = compute_findings(
                session,
                model,
                model_row,
                version,
                reference,
                reference_row,
                start,
                end,
                state=window.findings,
                inputs=inputs,
                reference_labelled=reference_labelled,
                external=external,
            )
            out.append(VersionFlagged(version=version, flagged=findings.flagged))
    return out
