"""The ingest circuit breaker: a batch mostly rejected for one reason stops the job.

A config mistake (a renamed feature, an unregistered model version, a wrong embedding size)
rejects every row for the same reason. Quarantining them all would fill the quarantine and move
the watermark past them; instead the batch's transaction is rolled back and the job stops with
:class:`~drift.errors.SourceRejectedError` (exit code 4), safe to rerun after the fix.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from drift.errors import SourceRejectedError
from storage.bulk import Reject

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def reason_kind(field: str | None, reason: str) -> tuple[str | None, str]:
    """Rejections of one kind: the same field and reason, whatever numbers the reason quotes
    ("probabilities sum to 0.9500" and "... 1.0400" are one kind)."""
    return field, _NUMBER.sub("#", reason)


def trip_if_rejected(source: str, rejects: Sequence[Reject], rows: int, *, max_share: float, min_rows: int) -> None:
    """Raise :class:`SourceRejectedError` when more than ``max_share`` of a batch of at least
    ``min_rows`` rows was rejected for one kind of reason (``max_share`` 1 never trips)."""
    if not rejects or rows < min_rows or max_share >= 1:
        return
    kinds = Counter(reason_kind(r.field, r.reason) for r in rejects)
    kind, count = kinds.most_common(1)[0]
    if count > max_share * rows:
        example = next(r for r in rejects if reason_kind(r.field, r.reason) == kind)
        raise SourceRejectedError(source, example.reason, field=example.field, rejected=count, rows=rows)
