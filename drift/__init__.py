"""drift: pure drift statistics (numpy / pandas in, frozen dataclasses out).

Entry points: :func:`compare` on DataFrames, :class:`ReferenceProfile` /
:class:`WindowProfile` and :func:`compare_profiles` for the profile-based fast path.
evidently is imported only when ``engine="evidently"`` runs.
"""

import importlib
from typing import Any

# Names resolve on first use (PEP 562): ``import drift.errors`` (which storage and the CLI do)
# stays cheap, and nothing here imports scipy or pandas until it is needed.
_EXPORTS = {
    "ColumnDrift": "drift.result",
    "ColumnSpec": "drift.spec",
    "DriftMethod": "drift.methods",
    "DriftPolicy": "drift.verdict",
    "DriftResult": "drift.result",
    "DriftSpec": "drift.spec",
    "EmbeddingScore": "drift.embedding",
    "Engine": "drift.comparison",
    "ReferenceProfile": "drift.profile",
    "WindowProfile": "drift.profile",
    "adjust_p_values": "drift.verdict",
    "compare": "drift.comparison",
    "compare_profiles": "drift.comparison",
    "default_method": "drift.methods",
    "infer_column_type": "drift.spec",
    "mmd_test": "drift.embedding",
    "output_frame": "drift.spec",
    "output_spec": "drift.spec",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'drift' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "ColumnDrift",
    "ColumnSpec",
    "DriftMethod",
    "DriftPolicy",
    "DriftResult",
    "DriftSpec",
    "EmbeddingScore",
    "Engine",
    "ReferenceProfile",
    "WindowProfile",
    "adjust_p_values",
    "compare",
    "compare_profiles",
    "default_method",
    "infer_column_type",
    "mmd_test",
    "output_frame",
    "output_spec",
]
