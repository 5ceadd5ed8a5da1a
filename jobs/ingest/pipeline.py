"""Preparing batches for storage, overlapped with the writes.

Validating and encoding a batch is pure CPU work (:func:`prepare_batch`). It runs ahead of
the transaction that stores the previous batch, on a worker thread (:func:`prefetched`). The
worker only reads; every write, and every watermark or file-progress advance, stays in the
caller's transactions, so a crash loses at most the open batch. The overlap is real because
the writes mostly run without the GIL: SQLite's one ``INSERT ... SELECT`` per batch runs in C
with it released, and PostgreSQL's ``COPY`` mostly waits on the server (:mod:`storage.bulk`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from jobs.config import ModelSettings
from jobs.ingest import sources
from jobs.ingest.validate import LabelRows, validate_labels, validate_predictions
from storage import bulk

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class BatchContext:
    """Everything :func:`prepare_batch` needs; picklable, so a worker process can have it."""

    stream: str
    model: ModelSettings
    columns: dict[str, str]
    versions: frozenset[int]
    tolerance: float
    dialect: str
    model_id: int


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A batch validated and encoded, ready for one transaction."""

    rows_read: int
    encoded: bulk.EncodedPredictions | None
    labels: LabelRows | None
    valid: int
    rejects: list[bulk.Reject]
    consumed: int
    last_key: tuple[Any, Any] | None


def prepare_batch(context: BatchContext, batch: sources.RawBatch, last_key: tuple[Any, Any] | None = None) -> Prepared:
    encoded, labels, valid = None, None, 0
    found: list[bulk.Reject] = []
    if len(batch.frame):
        if context.stream == "predictions":
            rows, found = validate_predictions(
                batch.frame, batch.positions, context.model, context.columns, context.versions, context.tolerance
            )
            encoded = bulk.encode_predictions(context.dialect, context.model_id, rows)
            valid = len(rows)
        else:
            labels, found = validate_labels(batch.frame, batch.positions, context.model, context.columns)
            valid = len(labels)
    return Prepared(
        rows_read=len(batch),
        encoded=encoded,
        labels=labels,
        valid=valid,
        rejects=list(batch.rejects) + found,
        consumed=batch.consumed,
        last_key=last_key,
    )


def prefetched(produce: Callable[[], T | None]) -> Iterator[T]:
    """Items of ``produce()`` until it returns None, the next one made on a worker thread
    while the caller handles the current one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-prefetch") as pool:
        future = pool.submit(produce)
        while True:
            item = future.result()
            if item is None:
                return
            future = pool.submit(produce)
            yield item
