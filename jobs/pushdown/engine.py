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
* with a (Mahalanobis) outlier detector, each row's score computed in SQL from its embedding
  (:mod:`jobs.pushdown.mahalanobis`; equal to the local score up to rounding): per segment the
  count of confident outliers and only the ``top_k`` highest of them, ordered as the local
  heap orders them.
* for the accuracy estimate: rows grouped by (segment, predicted label, cell of the
  confidence on the knots of that label's calibrator, far flag), with the sums that make each
  group's calibrated sums exact (:mod:`jobs.pushdown.calibrated`; equal up to rounding): at
  most ``segments x sum over labels of (2 knots + 1) x 2`` rows. With a detector, the far flag
  (score past its threshold) is known, so ``n_far`` and ``sum_p_far`` are the local path's.
* :meth:`PushdownDays.rows_by_id`: the few rows the label-dependent findings need, by id.
* rejected rows: counted per segment, a bounded sample of them read and validated here, so
  their reasons are the ingestion's own.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Connection

from drift import ReferenceProfile, WindowProfile
from drift.errors import ConfigError
from drift.profile import CategoryStats, ColumnStats, NumericStats
from drift.sample import RowSample
from jobs.check.flagged import Flagged, FlagKind
from jobs.check.frames import model_frame
from jobs.check.state import DayFindings
from jobs.check.windows import FindingsInputs
from jobs.config import ModelSettings, SqlSource
from jobs.ingest.validate import validate_predictions
from jobs.lake.base import DayState, ExternalDays, IdentifiedRows, RejectTally, Segment
from jobs.pushdown import sql
from jobs.pushdown.calibrated import CellPlan, calibrated_sums, groups_of
from jobs.pushdown.mahalanobis import MahalanobisSql

REJECT_SAMPLE = 200  # rejected rows read (and validated) per segment
IDS_PER_QUERY = 50_000  # prediction ids sent in one query by rows_by_id


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
        self.reads: Counter[str] = Counter()  # the same, per kind of query
        self.seconds: dict[str, float] = {}  # time spent per kind of query

    def _run(self, conn: Connection, query: str, params: dict[str, Any], *, what: str = "other") -> list[Any]:
        stmt = text(query)
        expanding: list[Any] = [bindparam(k, expanding=True) for k in ("labels", "known") if f":{k}" in query]
        if expanding:
            stmt = stmt.bindparams(*expanding)
        used = {k: v for k, v in params.items() if f":{k}" in query}
        t0 = time.perf_counter()
        rows = list(conn.execute(stmt, used))
        self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - t0
        self.rows_read += len(rows)
        self.reads[what] += len(rows)
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
        score = MahalanobisSql.of(inputs.detector) if inputs.detector is not None and s.embedding else None
        if score is not None:
            params |= {"threshold": score.threshold, "min_confidence": inputs.min_confidence, "top_k": inputs.top_k}
        plan = CellPlan.of(inputs.calibration.calibrator) if inputs.calibration is not None else None
        if plan is not None:
            params |= plan.params()
        n = len(segments)
        with self.engine.connect() as conn:
            aggregates = self._run(conn, sql.profile_query(s, model, n, n_edges), params, what="profile")
            sample_query = sql.rows_query(s, model, n, where="TRUE", order="dk_key", limit=str(reference.sample_size))
            sample = self._run(conn, sample_query, params, what="sample")
            outliers = self._run(conn, sql.outlier_query(s, model, n, score), params, what="outliers") if score else []
            grouped: list[Any] = []
            if plan is not None:
                query = sql.calibration_query(s, model, n, [c.knots.size for _, c in plan.parts], score)
                grouped = self._run(conn, query, params, what="calibration")
            rejected = self._run(conn, sql.rejected_query(s, model, n, REJECT_SAMPLE), params, what="rejected")
        columns = _columns(aggregates, numeric_names, category_names, n_edges, reference)
        samples = self._samples(sample, reference)
        groups = groups_of(grouped)
        out: dict[datetime, DayState] = {}
        for i, (start, _) in enumerate(segments):
            profile = None
            if i in columns:
                cols = {c.name: columns[i][c.name] for c in reference.spec.columns}
                rows = sum(int(x.counts.sum()) for x in [cols["confidence"]] if isinstance(x, NumericStats))
                profile = WindowProfile(fingerprint=reference.fingerprint, n_rows=rows, columns=cols, sample=samples[i])
            n_rows = profile.n_rows if profile else 0
            findings = DayFindings()
            if n_rows:
                mine = [r for r in outliers if int(r[0]) == i]
                findings = _findings(n_rows, mine, score is not None, groups.get(i, []), plan, inputs)
            out[start] = DayState(profile=profile, findings=findings, rejects=self._rejects(i, rejected))
        return out

    def rows_by_id(self, version: int, start: datetime, end: datetime, ids: Sequence[str]) -> IdentifiedRows:
        """The accepted rows of ``version`` in [start, end) with these ids: ``IDS_PER_QUERY`` ids a
        query, as a text array; accepted by the profile's own predicate, their confidence and
        predicted label those validation gives them."""
        wanted = sorted({str(i) for i in ids})
        if not wanted or version not in self.known_versions:
            return IdentifiedRows.empty()
        params = self._params(version, [(start, end)])
        query = sql.ids_query(self.sql, self.model)
        found: list[Any] = []
        with self.engine.connect() as conn:
            for at in range(0, len(wanted), IDS_PER_QUERY):
                chunk = params | {"ids": wanted[at : at + IDS_PER_QUERY]}
                found += self._run(conn, query, chunk, what="ids")
        return IdentifiedRows(
            prediction_id=np.array([r[0] for r in found], dtype=object),
            confidence=np.array([float(r[1]) for r in found], dtype=np.float64),
            predicted_label=np.array([str(r[2]) for r in found], dtype=object),
            input_uri=np.array([r[3] for r in found], dtype=object),
        )

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


def _findings(
    n_rows: int,
    outliers: list[Any],
    scored: bool,
    groups: list[Any],
    plan: CellPlan | None,
    inputs: FindingsInputs,
) -> DayFindings:
    """One segment's findings from its top outliers (``seg, pid, conf, pred, uri, score, count``)
    and its calibration groups."""
    flagged = tuple(
        Flagged(
            prediction_id=str(pid),
            kind=FlagKind.CONFIDENT_OUTLIER,
            confidence=float(conf),
            score=float(score),
            predicted_label=str(pred),
            true_label=None,
            input_uri=uri,
        )
        for _, pid, conf, pred, uri, score, _ in outliers
    )
    estimate = None
    if inputs.calibration is not None and plan is not None:
        estimate = calibrated_sums(plan, groups, far_known=scored)
    return DayFindings(
        n_rows=n_rows,
        min_confidence=inputs.min_confidence,
        n_outliers=int(outliers[0][6]) if outliers else 0,
        outliers=flagged,
        calibration=inputs.calibration.fingerprint if inputs.calibration is not None else None,
        estimate=estimate,
        top_k=inputs.top_k,
    )


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
