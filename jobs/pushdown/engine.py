"""Day states of a SQL source from aggregates computed in the source database (``compute: pushdown``).

Per version and window, a handful of queries (:mod:`jobs.pushdown.sql`):

* one scan grouped by (segment, column, cell or category): every numeric column's counts,
  sums, sums of squares, minima and maxima on the reference's cells, every categorical
  column's counts. Counts equal the local path's exactly; sums are added in another order
  (equal up to rounding, ~1e-12 relative); minima and maxima are exact.
* the bounded row sample: the ``sample_size`` rows of each segment with the smallest
  ``md5(prediction_id)``. This is a uniform sample like the local one, but not the same rows
  (the local key hashes the row's content with pandas), so the embedding test, which reads
  the sample, gives another p-value on the same data; every other test reads only counts.
* the candidates of the confident-outlier heap: the rows with confidence >= the threshold
  (with their embeddings), scored here exactly as the local pass scores them.
* for the accuracy estimate: rows per (segment, predicted label, confidence); with an
  embedding detector the rows past its threshold are not counted (``n_far`` unknown).
* rejected rows: counted per segment, a bounded sample of them read and validated here, so
  their reasons are the ingestion's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Connection

from drift import ReferenceProfile, WindowProfile
from drift.class_calibration import calibrated
from drift.errors import ConfigError
from drift.estimate import CalibratedSums
from drift.profile import CategoryStats, ColumnStats, NumericStats
from drift.sample import RowSample
from jobs.check.frames import model_frame
from jobs.check.state import DayFindings
from jobs.check.windows import FindingsInputs
from jobs.config import ModelSettings, SqlSource
from jobs.ingest.validate import validate_predictions
from jobs.lake.base import DayState, ExternalDays, RejectTally, Segment
from jobs.pushdown import sql

REJECT_SAMPLE = 200  # rejected rows read (and validated) per segment
ALL = "9223372036854775807"


class PushdownDays(ExternalDays):
    """A SQL source's day states from GROUP BY aggregates (PostgreSQL first)."""

    kind = "pushdown"

    def __init__(self, model: ModelSettings, source: SqlSource, known_versions: Collection[int], tolerance: float):
        super().__init__()
        self.model = model
        self.source = source
        self.known_versions = tuple(sorted(known_versions))
        self.tolerance = tolerance
        self.engine = create_engine(source.url.get_secret_value())
        if self.engine.dialect.name != "postgresql":
            raise ConfigError(
                f"compute: pushdown needs width_bucket(x, array) and md5 (PostgreSQL); "
                f"{self.engine.dialect.name} has no such functions: use compute: pull"
            )
        relation = source.table if source.table is not None else f"({source.query}) AS q"
        with self.engine.connect() as conn:
            present = set(conn.execute(text(f"SELECT * FROM {relation} LIMIT 0")).keys())
        self.sql = sql.SourceSql.of(model, source, self.engine.dialect, present)
        self.rows_read = 0  # result rows that travelled, for the benchmark

    def _run(self, conn: Connection, query: str, params: dict[str, Any]) -> list[Any]:
        stmt = text(query)
        expanding: list[Any] = [bindparam(k, expanding=True) for k in ("labels", "known") if f":{k}" in query]
        if expanding:
            stmt = stmt.bindparams(*expanding)
        used = {k: v for k, v in params.items() if f":{k}" in query}
        rows = list(conn.execute(stmt, used))
        self.rows_read += len(rows)
        return rows

    def _params(self, version: int | None, segments: Sequence[Segment]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "start": min(s for s, _ in segments),
            "end": max(e for _, e in segments),
            "version": version,
            "tolerance": self.tolerance,
            "labels": list(self.model.class_labels),
            "known": list(self.known_versions) or [-1],
        }
        params |= {f"label{j}": lab for j, lab in enumerate(self.model.class_labels)}
        for i, (a, b) in enumerate(segments):
            params[f"s{i}"], params[f"e{i}"] = a, b
        return params

    def versions(self, start: datetime, end: datetime) -> list[int]:
        s = self.sql
        query = f"SELECT DISTINCT {s.version} FROM {s.relation} AS src WHERE {s.ts} >= :start AND {s.ts} < :end"
        with self.engine.connect() as conn:
            found = {r[0] for r in self._run(conn, query, {"start": start, "end": end})}
        return sorted(int(v) for v in found if v is not None and int(v) in self.known_versions)

    def watermarks(self, version: int, days: Sequence[datetime]) -> dict[datetime, int]:
        from jobs.check.windows import DAY

        segments = [(d, d + DAY) for d in days]
        s = self.sql
        query = f"""SELECT seg, max({s.id_column}), count(*) FROM (
            SELECT {sql.segment_case(s, len(segments))} AS seg, {s.id_column} FROM {s.relation} AS src
            WHERE {s.ts} >= :start AND {s.ts} < :end) AS r WHERE seg IS NOT NULL GROUP BY seg"""
        with self.engine.connect() as conn:
            found = {int(seg): (top, n) for seg, top, n in self._run(conn, query, self._params(version, segments))}
        marks = {}
        for i, day in enumerate(days):
            top, n = found.get(i, (None, 0))
            marks[day] = int.from_bytes(hashlib.sha256(f"{top}:{n}".encode()).digest()[:8], "big") >> 2 if n else 0
        return marks

    def compute(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> dict[datetime, DayState]:
        model, s = self.model, self.sql
        params = self._params(version, segments)
        numeric_names = [*model.numeric_features, *(f"prob_{lab}" for lab in model.class_labels)]
        numeric_names += ["confidence", "margin", "entropy"]
        category_names = [*model.categorical_features, "predicted"]
        n_edges = {name: int(reference.edges[name].size) for name in numeric_names}
        params |= {f"edges_{i}": reference.edges[name].tolist() for i, name in enumerate(numeric_names)}
        params |= {f"neg_edges_{i}": (-reference.edges[name][::-1]).tolist() for i, name in enumerate(numeric_names)}
        n = len(segments)
        with self.engine.connect() as conn:
            aggregates = self._run(conn, sql.profile_query(s, model, n, n_edges), params)
            sample = self._run(
                conn,
                sql.rows_query(s, model, n, where="TRUE", order="dk_key", limit=str(reference.sample_size)),
                params,
            )
            candidates: list[Any] = []
            if inputs.detector is not None and model.embedding is not None:
                query = sql.rows_query(s, model, n, where="conf >= :min_confidence", order="pid", limit=ALL)
                candidates = self._run(conn, query, params | {"min_confidence": inputs.min_confidence})
            grouped = self._run(conn, sql.grouped_confidence_query(s, model, n), params) if inputs.calibration else []
            rejected = self._run(conn, sql.rejected_query(s, model, n, REJECT_SAMPLE), params)
        columns = _columns(aggregates, numeric_names, category_names, n_edges, reference)
        samples = self._samples(sample, reference)
        out: dict[datetime, DayState] = {}
        for i, (start, _) in enumerate(segments):
            profile = None
            if i in columns:
                cols = {c.name: columns[i][c.name] for c in reference.spec.columns}
                rows = sum(int(x.counts.sum()) for x in [cols["confidence"]] if isinstance(x, NumericStats))
                profile = WindowProfile(fingerprint=reference.fingerprint, n_rows=rows, columns=cols, sample=samples[i])
            findings = self._findings(i, profile.n_rows if profile else 0, candidates, grouped, inputs)
            out[start] = DayState(profile=profile, findings=findings, rejects=self._rejects(i, rejected))
        return out

    def _frame(self, rows: list[Any]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        model = self.model
        k, nf, nc = len(model.class_labels), len(model.numeric_features), len(model.categorical_features)
        width = model.embedding.width if model.embedding is not None and model.embedding.width else 0
        at = 6  # seg, pid, key, conf, pred, uri, then the arrays
        cols = list(zip(*rows, strict=True)) if rows else [()] * (at + k + nf + nc + width + 1)
        probabilities = np.column_stack([np.asarray(cols[at + j], dtype=np.float64) for j in range(k)]).astype(
            np.float32
        )
        numeric = np.column_stack([np.asarray(cols[at + k + i], dtype=np.float64) for i in range(nf)]) if nf else None
        categorical = (
            pd.DataFrame(
                {f: np.asarray(cols[at + k + nf + i], dtype=object) for i, f in enumerate(model.categorical_features)}
            )
            if nc
            else None
        )
        first = at + k + nf + nc
        embedding = (
            np.column_stack([np.asarray(cols[first + i], dtype=np.float64) for i in range(width)]).astype(np.float32)
            if width
            else None
        )
        frame = model_frame(
            model, probabilities=probabilities, numeric=numeric, categorical=categorical, embedding=embedding
        )
        meta = {
            "seg": np.asarray(cols[0], dtype=np.int64),
            "pid": np.asarray(cols[1], dtype=object),
            "key": np.array([int(h[:16], 16) for h in cols[2]], dtype=np.uint64),
            "conf": np.asarray(cols[3], dtype=np.float64),
            "pred": np.asarray(cols[4], dtype=object),
            "uri": np.asarray(cols[5], dtype=object),
        }
        if embedding is not None:
            meta["embedding"] = embedding
        return frame, meta

    def _samples(self, rows: list[Any], reference: ReferenceProfile) -> dict[int, RowSample]:
        frame, meta = self._frame(rows)
        names = list(reference.spec.all_columns)
        out = {}
        for seg in np.unique(meta["seg"]):
            pick = np.flatnonzero(meta["seg"] == seg)
            pick = pick[np.argsort(meta["key"][pick], kind="stable")]
            out[int(seg)] = RowSample(
                k=reference.sample_size, keys=meta["key"][pick], rows=frame.iloc[pick][names].reset_index(drop=True)
            )
        return out

    def _findings(
        self, seg: int, n_rows: int, candidates: list[Any], grouped: list[Any], inputs: FindingsInputs
    ) -> DayFindings:
        if n_rows == 0:
            return DayFindings()
        mine = [r for r in candidates if r[0] == seg]
        _, meta = self._frame(mine)
        state = DayFindings.of_rows(
            prediction_id=meta["pid"],
            confidence=meta["conf"],
            predicted_label=meta["pred"],
            input_uri=meta["uri"],
            embedding=meta.get("embedding"),
            detector=inputs.detector if mine else None,
            min_confidence=inputs.min_confidence,
            calibration=None,
            top_k=inputs.top_k,
        )
        estimate = None
        if inputs.calibration is not None:
            groups = [r for r in grouped if r[0] == seg]
            conf = np.array([float(r[2]) for r in groups], dtype=np.float64)
            count = np.array([int(r[3]) for r in groups], dtype=np.float64)
            p = calibrated(inputs.calibration.calibrator, conf, np.array([r[1] for r in groups], dtype=object))
            estimate = CalibratedSums(
                n=int(count.sum()),
                sum_p=float(np.dot(count, p)),
                sum_pq=float(np.dot(count, p * (1.0 - p))),
                sum_confidence=float(np.dot(count, conf)),
            )
        return replace(
            state,
            n_rows=n_rows,
            calibration=inputs.calibration.fingerprint if inputs.calibration is not None else None,
            estimate=estimate,
        )

    def _rejects(self, seg: int, rows: list[Any]) -> RejectTally:
        mine = [r for r in rows if r._mapping["dk_seg"] == seg]
        if not mine:
            return RejectTally()
        keys = [k for k in mine[0]._mapping if not str(k).startswith("dk_")]
        raw = pd.DataFrame([{k: r._mapping[k] for k in keys} for r in mine])
        positions = [f"{self.source.table or 'query'}#{r._mapping['dk_pos']}" for r in mine]
        _, rejects = validate_predictions(
            raw, positions, self.model, dict(self.source.columns), self.known_versions, self.tolerance
        )
        tally = RejectTally.of(rejects)
        total = int(mine[0]._mapping["dk_total"])
        if total > tally.n_rows:
            counts = dict(tally.counts)
            counts[(None, f"rejected (the reasons of {tally.n_rows} of them are shown)")] = total - tally.n_rows
            tally = replace(tally, counts=counts)
        return tally


def _columns(
    aggregates: list[Any],
    numeric_names: list[str],
    category_names: list[str],
    n_edges: dict[str, int],
    reference: ReferenceProfile,
) -> dict[int, dict[str, ColumnStats]]:
    """The aggregate rows as each segment's column statistics."""
    parts: dict[int, dict[int, list[Any]]] = {}
    for row in aggregates:
        parts.setdefault(int(row[0]), {}).setdefault(int(row[1]), []).append(row)
    out: dict[int, dict[str, ColumnStats]] = {}
    base = len(numeric_names)
    for seg, by_col in parts.items():
        cols: dict[str, ColumnStats] = {}
        for i, name in enumerate(numeric_names):
            size = 2 * n_edges[name] + 1
            counts = np.zeros(size, dtype=np.int64)
            sums = np.zeros(size)
            rows = by_col.get(i, [])
            for _, _, cell, _, n, total, _, _, _ in rows:
                counts[int(cell)] += int(n)
                sums[int(cell)] += float(total)
            cols[name] = NumericStats(
                counts=counts,
                sums=sums,
                n_missing=0,
                total=float(sum(float(r[5]) for r in rows)),
                total_sq=float(sum(float(r[6]) for r in rows)),
                min=min((float(r[7]) for r in rows), default=np.inf),
                max=max((float(r[8]) for r in rows), default=-np.inf),
            )
        for j, name in enumerate(category_names):
            found = {r[3]: int(r[4]) for r in by_col.get(base + j, [])}
            cols[name] = CategoryStats(counts=found, n_missing=0)
        out[seg] = cols
    return out
