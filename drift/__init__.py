"""drift: pure drift statistics (numpy / pandas in, frozen dataclasses out).

Entry points: :func:`compare` on DataFrames, :class:`ReferenceProfile` /
:class:`WindowProfile` and :func:`compare_profiles` for the profile-based fast path.
evidently is imported only when ``engine="evidently"`` runs.
"""

from drift import evidently_engine  # noqa: F401  (registers the "evidently" engine)
from drift.compare import Engine, compare, compare_profiles
from drift.embedding import EmbeddingScore, mmd_test
from drift.methods import DriftMethod, default_method
from drift.profile import ReferenceProfile, WindowProfile
from drift.result import ColumnDrift, DriftResult
from drift.spec import ColumnSpec, DriftSpec, infer_column_type, output_frame, output_spec
from drift.verdict import DriftPolicy, adjust_p_values

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
