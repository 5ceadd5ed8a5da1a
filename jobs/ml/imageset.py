"""Labelled (or not) images that are read only when a batch needs them.

An :class:`ImageSet` entry is either a URI (a local path, ``file://``, ``s3://``, ``gs://``,
``https://``; read through :func:`jobs.images.read_uri_bytes`, only inside its allowed roots) or
an index into an in-memory array (the demo's ``.npz``). Batches are decoded, resized and
normalised per the model's contract (:mod:`jobs.ml.preprocess`) when they are asked for, so a
training set of 50,000 224x224 photos is never in memory at once. An image that is missing or
does not decode is not fatal: its batch marks it not ``ok`` with the reason, and the trainer
counts the reasons into the retrain record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.errors import ValidationError
from jobs.ml.contract import Contract
from jobs.ml.preprocess import decode_input, model_input


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Model-ready inputs for ``positions`` of a set; rows that failed to load are zeros, not ``ok``."""

    x: np.ndarray
    positions: np.ndarray
    ok: np.ndarray
    reasons: tuple[str, ...]  # one per row, "" when ok


@dataclass(frozen=True, kw_only=True)
class ImageSet:
    """Images by URI or in memory, with optional class indices and weights (see the module docstring)."""

    entries: np.ndarray  # object: str (a URI) or int (a row of ``arrays``)
    arrays: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    roots: tuple[str, ...] = ()
    storage_options: Mapping[str, Mapping[str, Any]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.entries)
        for name in ("labels", "weights"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValidationError(f"ImageSet.{name} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def of_arrays(
        cls, images: np.ndarray, labels: np.ndarray | None = None, weights: np.ndarray | None = None
    ) -> ImageSet:
        entries = np.empty(len(images), dtype=object)
        entries[:] = list(range(len(images)))
        return cls(
            entries=entries,
            arrays=np.asarray(images),
            labels=None if labels is None else np.asarray(labels, np.int64),
            weights=None if weights is None else np.asarray(weights, np.float32),
        )

    @classmethod
    def of_uris(
        cls,
        uris: Sequence[str],
        labels: np.ndarray | None = None,
        *,
        roots: Sequence[str] = (),
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
        weights: np.ndarray | None = None,
    ) -> ImageSet:
        entries = np.empty(len(uris), dtype=object)
        entries[:] = [str(u) for u in uris]
        return cls(
            entries=entries,
            labels=None if labels is None else np.asarray(labels, np.int64),
            weights=None if weights is None else np.asarray(weights, np.float32),
            roots=tuple(str(r) for r in roots),
            storage_options=storage_options,
        )

    @classmethod
    def empty(cls) -> ImageSet:
        return cls(entries=np.empty(0, dtype=object), labels=np.empty(0, np.int64), weights=np.empty(0, np.float32))

    def take(self, index: np.ndarray) -> ImageSet:
        """The entries at ``index`` (positions or a boolean mask); in-memory rows stay shared."""
        return ImageSet(
            entries=self.entries[index],
            arrays=self.arrays,
            labels=None if self.labels is None else self.labels[index],
            weights=None if self.weights is None else self.weights[index],
            roots=self.roots,
            storage_options=self.storage_options,
        )

    def with_weights(self, weights: np.ndarray) -> ImageSet:
        return ImageSet(
            entries=self.entries,
            arrays=self.arrays,
            labels=self.labels,
            weights=np.asarray(weights, np.float32),
            roots=self.roots,
            storage_options=self.storage_options,
        )

    @staticmethod
    def concat(parts: Sequence[ImageSet]) -> ImageSet:
        """One set of all ``parts``: in-memory rows are stacked, URIs and their roots kept."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return ImageSet.empty()
        if len(parts) == 1:
            return parts[0]
        offset = 0
        entries, arrays = [], []
        for part in parts:
            remapped = part.entries.copy()
            in_memory = np.array([not isinstance(e, str) for e in part.entries], dtype=bool)
            if in_memory.any():
                assert part.arrays is not None, "an in-memory entry without arrays"
                rows = np.array([int(e) for e in part.entries[in_memory]], dtype=np.int64)
                arrays.append(part.arrays[rows])
                remapped[in_memory] = list(range(offset, offset + len(rows)))
                offset += len(rows)
            entries.append(remapped)
        stacked = _stack(arrays) if arrays else None
        options = next((p.storage_options for p in parts if p.storage_options), None)
        return ImageSet(
            entries=np.concatenate(entries),
            arrays=stacked,
            labels=_concat_optional([p.labels for p in parts], np.int64),
            weights=_concat_optional([p.weights for p in parts], np.float32),
            roots=tuple(dict.fromkeys(r for p in parts for r in p.roots)),
            storage_options=options,
        )

    def load(self, positions: np.ndarray, contract: Contract, *, workers: int = 4) -> Batch:
        """The model-ready inputs of ``positions`` (see :class:`Batch`)."""
        positions = np.asarray(positions, dtype=np.int64)
        x = np.zeros((len(positions), *contract.input_shape), np.float32)
        ok = np.ones(len(positions), dtype=bool)
        reasons = [""] * len(positions)
        entries = self.entries[positions]
        in_memory = np.array([not isinstance(e, str) for e in entries], dtype=bool)
        if in_memory.any():
            assert self.arrays is not None, "an in-memory entry without arrays"
            rows = np.array([int(e) for e in entries[in_memory]], dtype=np.int64)
            x[in_memory] = model_input(self.arrays[rows], contract)
        uri_at = np.flatnonzero(~in_memory)
        if len(uri_at):
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(uri_at)))) as pool:
                for i, (value, reason) in zip(
                    uri_at, pool.map(lambda e: self._read_one(e, contract), entries[uri_at]), strict=True
                ):
                    if value is None:
                        ok[i], reasons[i] = False, reason
                    else:
                        x[i] = value
        return Batch(x=x, positions=positions, ok=ok, reasons=tuple(reasons))

    def _read_one(self, uri: str, contract: Contract) -> tuple[np.ndarray | None, str]:
        from jobs.images import read_uri_bytes

        data, reason = read_uri_bytes(uri, self.roots, self.storage_options)
        if data is None:
            return None, reason
        try:
            return decode_input(data, contract), ""
        except ValidationError:
            return None, "not a decodable image"

    def batches(self, contract: Contract, batch_size: int, order: np.ndarray | None = None) -> Iterator[Batch]:
        """The set in ``order`` (default: as stored), ``batch_size`` rows at a time."""
        order = np.arange(len(self)) if order is None else np.asarray(order, np.int64)
        for start in range(0, len(order), batch_size):
            yield self.load(order[start : start + batch_size], contract)


def failure_counts(batches: Sequence[Batch] | Iterator[Batch]) -> dict[str, int]:
    """Rows that failed to load, by reason."""
    counts: Counter[str] = Counter()
    for batch in batches:
        counts.update(r for r in batch.reasons if r)
    return dict(counts)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise ValidationError(f"in-memory images of different shapes cannot be joined: {sorted(shapes)}")
    if len({a.dtype for a in arrays}) == 1:
        return np.concatenate(arrays)
    unit = [a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32) for a in arrays]
    return np.concatenate(unit)


def _concat_optional(values: list[np.ndarray | None], dtype: Any) -> np.ndarray | None:
    if any(v is None for v in values):
        return None
    return np.concatenate([np.asarray(v, dtype) for v in values if v is not None])
