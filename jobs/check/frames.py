"""From a model's config and its stored arrays to what the drift engine compares."""

from __future__ import annotations

import numpy as np
import pandas as pd

from drift import ColumnSpec, DriftPolicy, DriftSpec, output_frame, output_spec
from jobs.config import ModelSettings
from storage.windows import Layout, LoggedRows


def embedding_columns(model: ModelSettings) -> tuple[str, ...]:
    width = model.embedding.width if model.embedding is not None else None
    return tuple(f"emb_{i}" for i in range(width or 0))


def layout(model: ModelSettings) -> Layout:
    return Layout(
        n_classes=len(model.class_labels),
        numeric_width=len(model.numeric_features),
        categorical=model.categorical_features,
        embedding_width=model.embedding.width if model.embedding is not None else None,
    )


def drift_spec(model: ModelSettings) -> DriftSpec:
    """Features as configured, the derived outputs, the embedding as one multivariate test."""
    overrides = model.drift.columns
    columns = [
        ColumnSpec(
            name=f.name,
            type=f.type,
            role="feature",
            method=overrides[f.name].method if f.name in overrides else None,
            threshold=overrides[f.name].threshold if f.name in overrides else None,
        )
        for f in model.features
    ]
    for out in output_spec(model.class_labels):
        o = overrides.get(out.name)
        columns.append(
            ColumnSpec(
                name=out.name,
                type=out.type,
                role="output",
                method=o.method if o else None,
                threshold=o.threshold if o else None,
            )
        )
    embedding = embedding_columns(model) or None
    policy = DriftPolicy(
        name=f"{model.name} policy",
        outputs=True,
        embedding=embedding is not None,
        feature_share=model.drift.feature_share,
        min_effect=model.drift.min_effect,
    )
    return DriftSpec(
        columns=tuple(columns),
        embedding=embedding,
        correction=model.drift.correction,
        method_rule=model.drift.method_rule,
        policy=policy,
    )


def model_frame(
    model: ModelSettings,
    *,
    probabilities: np.ndarray,
    numeric: np.ndarray | None = None,
    categorical: pd.DataFrame | None = None,
    embedding: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per prediction with every column of :func:`drift_spec`."""
    parts = []
    if model.numeric_features:
        assert numeric is not None
        parts.append(pd.DataFrame(np.asarray(numeric, dtype=np.float64), columns=list(model.numeric_features)))
    if model.categorical_features:
        assert categorical is not None
        parts.append(categorical[list(model.categorical_features)].reset_index(drop=True).astype(str))
    # compare outputs at the precision the app logs them: a model re-scoring inputs gives 3e-9
    # where the log says 0, and a rank test on near-zero probabilities would see nothing else
    rounded = np.round(np.asarray(probabilities, dtype=np.float64), model.output_decimals)
    parts.append(output_frame(rounded, model.class_labels))
    names = embedding_columns(model)
    if names:
        assert embedding is not None
        parts.append(pd.DataFrame(np.asarray(embedding, dtype=np.float64), columns=list(names)))
    frame = pd.concat(parts, axis=1)
    ordered = [f.name for f in model.features] + [c for c in frame.columns if c not in {f.name for f in model.features}]
    return frame[ordered]


def frame_from_rows(model: ModelSettings, rows: LoggedRows) -> pd.DataFrame:
    return model_frame(
        model,
        probabilities=rows.probabilities,
        numeric=rows.numeric,
        categorical=rows.categorical,
        embedding=rows.embedding,
    )
