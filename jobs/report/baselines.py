"""The week of one version against three baselines, for the report (:class:`reports.baselines.Baselines`).

1. **serving**: the version's own reference, from the stored day profiles where they are current
   (as the check compared it);
2. **baseline**: the reference set of ``drift.baseline_version`` (default: the lowest version that
   has one), so that after a retrain swaps the reference the report still shows how far the inputs
   are from what the product was designed for;
3. **previous week**: the same version's rows of the week before as a reference: the bounded
   bottom-k row sample of that week's profile (``reference_sample_size`` rows of the reference it
   was profiled on), from which a :class:`~drift.ReferenceProfile` is built in memory.

Only reads, and stores nothing: the day profiles :func:`~jobs.check.windows.window_profile` would
have stored are dropped (the check stores them), and the week's profiles against the other two
references (made in one pass over the week's rows) live only in memory, so the stored day
profiles of the version, keyed to its own reference, are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from drift import ReferenceProfile, WindowProfile, compare_profiles
from drift.errors import ReferenceSetNotFound, ValidationError
from jobs.check.frames import frame_from_rows, layout
from jobs.check.reference import MIN_REFERENCE_ROWS, load_reference
from jobs.check.windows import window_profile
from jobs.config import ModelSettings
from jobs.report.weeks import iso_week
from reports.baselines import BaselineDrift, Baselines, ComparedWeek
from storage import repository, versions
from storage.models import Model
from storage.windows import iter_rows

log = logging.getLogger(__name__)


def baseline_version(session: Session, model: ModelSettings, model_row: Model) -> int | None:
    """The pinned ``drift.baseline_version``, else the lowest version with a reference set (None: none has)."""
    if model.drift.baseline_version is not None:
        return model.drift.baseline_version
    for version in sorted(repository.known_versions(session, model_row.id)):
        if versions.has_reference_set(session, model_row.id, version):
            return version
    return None


def week_baselines(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Baselines | None:
    """``version``'s rows of [start, end) against its reference, the baseline and the week before.

    The week before is [start - (end - start), start), named by the ISO week it starts in.

    None when the version has no reference set or no rows in the window (nothing to compare).
    """
    try:
        reference, _ = load_reference(session, model_row, version)
    except ReferenceSetNotFound:
        return None
    # the profile only: what window_profile would store is dropped (the check stores day profiles)
    current = window_profile(session, model, model_row, version, reference, start, end, now).profile
    if current is None:
        return None
    notes: list[str] = []
    others: list[tuple[str, ReferenceProfile]] = []  # (which, reference) profiled in one pass below

    base = baseline_version(session, model, model_row)
    if base is None:
        notes.append("no version has a reference set to serve as the baseline")
    elif base == version:
        notes.append(f"the baseline is the serving version {version}")
    elif not versions.has_reference_set(session, model_row.id, base):
        notes.append(f"baseline version {base} has no reference set")
    else:
        others.append(("baseline", load_reference(session, model_row, base)[0]))

    prev_start, prev_end = start - (end - start), start
    compared_week = ComparedWeek(week=iso_week(prev_start), start=prev_start, end=prev_end)
    prev = window_profile(session, model, model_row, version, reference, prev_start, prev_end, now).profile
    n_prev = prev.n_rows if prev is not None else 0
    if prev is None or n_prev < MIN_REFERENCE_ROWS:
        notes.append(f"{n_prev} rows of version {version} in the week before ({compared_week.week}): no week-over-week")
    else:
        previous = ReferenceProfile.from_frame(
            prev.sample.rows, reference.spec, sample_size=reference.sample_size, seed=reference.seed
        )
        others.append(("previous_week", previous))

    profiles = _profile_week(session, model, model_row, version, [r for _, r in others], start, end, notes)
    found: dict[str, BaselineDrift] = {}
    for (which, ref), profile in zip(others, profiles, strict=True):
        if profile is None:
            continue
        result = compare_profiles(ref, profile)
        if which == "baseline":
            found[which] = BaselineDrift.of(result, against=f"baseline version {base}", version=base)
        else:
            found[which] = BaselineDrift.of(
                result, against=f"week {compared_week.week}", version=None, window=compared_week
            )
    serving = BaselineDrift.of(
        compare_profiles(reference, current), against=f"reference of version {version}", version=version
    )
    return Baselines(
        version=version,
        serving=serving,
        baseline=found.get("baseline"),
        previous_week=found.get("previous_week"),
        notes=tuple(notes),
    )


def _profile_week(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    references: Sequence[ReferenceProfile],
    start: datetime,
    end: datetime,
    notes: list[str],
) -> list[WindowProfile | None]:
    """The window's rows profiled on each of ``references``, in one pass, chunk by chunk (kept in memory).

    A reference whose columns the rows lack (its spec predates a config change) gets None and a note.
    """
    merged: list[WindowProfile | None] = [None] * len(references)
    failed: set[int] = set()
    if not references:
        return merged
    chunks = iter_rows(session, model_row.id, layout(model), version=version, start=start, end=end, with_uris=False)
    for rows in chunks:
        frame = frame_from_rows(model, rows)
        for i, ref in enumerate(references):
            if i in failed:
                continue
            try:
                part = ref.profile(frame)
            except ValidationError as exc:
                failed.add(i)
                notes.append(f"a baseline could not profile this week's rows: {exc}")
                log.warning("%s version %d: a baseline could not profile the week: %s", model.name, version, exc)
                continue
            current = merged[i]
            merged[i] = part if current is None else current.merge(part)
    return [None if i in failed else p for i, p in enumerate(merged)]
