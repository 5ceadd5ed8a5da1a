"""The unit every source reader hands out: rows as read, where they came from, and rejects."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from storage.bulk import Reject


@dataclass(frozen=True, kw_only=True)
class RawBatch:
    """The rows as read (every value as the source gave it), their positions in the source
    for error messages, and rows that could not even be parsed (kept as rejects, never dropped)."""

    frame: pd.DataFrame
    positions: list[str]
    rejects: list[Reject] = field(default_factory=list)
    consumed: int = 0  # source rows consumed up to the end of this batch (files)

    def __len__(self) -> int:
        return len(self.frame) + len(self.rejects)
