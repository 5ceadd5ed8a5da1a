"""The SQL of the push-down, built from a model's config (PostgreSQL; any dialect with
``width_bucket(x, array)``, ``md5``, ``GREATEST`` and ``LATERAL``).

Every value the local path derives in numpy is derived here in the same float64 operations:
probabilities cast to float32 (as stored) and rounded to ``output_decimals`` as
``rint(x * 10**d) / 10**d`` (PostgreSQL's float ``round`` is ``rint``: ties to even, as numpy),
confidence and margin from the two largest, entropy summed in numpy's pairwise order, the
predicted class as the first maximum. A value's cell on sorted edges ``e`` (``n`` of them) is
``(edges < x) + (edges <= x) = n - width_bucket(-x, -e reversed) + width_bucket(x, e)``: twice
the edges below it, plus one on an edge, as :class:`~drift.binned.CellIndexer` numbers them.

Two values are not derived in numpy's operations: the Mahalanobis outlier score
(:mod:`jobs.pushdown.mahalanobis`: the same products, added in another order) and the
calibrated sums, which come from per-cell moments (:mod:`jobs.pushdown.calibrated`); both
equal the local ones up to rounding. The rows that travel are bounded: the sample, the top
outliers, the rejected rows' sample, and the rows asked for by id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Dialect

from jobs.config import ColumnGroup, ModelSettings, SqlSource
from jobs.pushdown.mahalanobis import MahalanobisSql


def numpy_sum(terms: Sequence[str]) -> str:
    """``terms[0] + pairwise(terms[1:])`` in the order numpy's row-wise ``sum`` adds them."""
    if len(terms) == 1:
        return terms[0]
    return f"({terms[0]} + {_pairwise(list(terms[1:]))})"


def _pairwise(terms: list[str]) -> str:
    if len(terms) < 8:
        out = "0.0::float8"
        for t in terms:
            out = f"({out} + {t})"
        return out
    if len(terms) <= 128:
        blocked = len(terms) - len(terms) % 8
        r = list(terms[:8])
        for i in range(8, blocked, 8):
            r = [f"({r[j]} + {terms[i + j]})" for j in range(8)]
        out = f"((({r[0]} + {r[1]}) + ({r[2]} + {r[3]})) + (({r[4]} + {r[5]}) + ({r[6]} + {r[7]})))"
        for t in terms[blocked:]:
            out = f"({out} + {t})"
        return out
    half = len(terms) // 2
    half -= half % 8
    return f"({_pairwise(terms[:half])} + {_pairwise(terms[half:])})"


@dataclass(frozen=True, kw_only=True)
class SourceSql:
    """The quoted source columns of each canonical field (None: not in the source)."""

    relation: str
    prediction_id: str
    ts: str
    version: str
    id_column: str
    probabilities: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    embedding: tuple[str, ...]
    predicted_label: str | None
    confidence: str | None
    input_uri: str | None

    @classmethod
    def of(cls, model: ModelSettings, source: SqlSource, dialect: Dialect, present: set[str]) -> SourceSql:
        quote = dialect.identifier_preparer.quote

        def col(name: str) -> str:
            return quote(source.columns.get(name, name))

        def optional(name: str) -> str | None:
            return col(name) if source.columns.get(name, name) in present else None

        def group(g: ColumnGroup, width: int) -> tuple[str, ...]:
            if g.columns is not None:
                return tuple(quote(c) for c in g.columns)
            assert g.column is not None  # an array column: 1-based elements
            return tuple(f"{quote(g.column)}[{j + 1}]" for j in range(width))

        if source.table is not None:
            relation = ".".join(quote(p) for p in source.table.split("."))
        else:
            relation = f"({source.query})"
        emb = model.embedding
        return cls(
            relation=relation,
            prediction_id=col("prediction_id"),
            ts=col("timestamp"),
            version=col("model_version"),
            id_column=quote(source.id_column),
            probabilities=group(model.probabilities, len(model.class_labels)),
            numeric=tuple(col(f) for f in model.numeric_features),
            categorical=tuple(col(f) for f in model.categorical_features),
            embedding=group(emb, emb.width) if emb is not None and emb.width is not None else (),
            predicted_label=optional("predicted_label"),
            confidence=optional("confidence"),
            input_uri=optional("input_uri"),
        )


def _finite(x: str) -> str:
    return f"({x})::float8 > '-Infinity'::float8 AND ({x})::float8 < 'Infinity'::float8"


def valid_rows(s: SourceSql, model: ModelSettings) -> str:
    """The rows validation accepts (the version is checked by the caller), as one predicate."""
    conds = [
        f"{s.prediction_id} IS NOT NULL AND btrim({s.prediction_id}) <> '' AND length({s.prediction_id}) <= 200",
        f"{s.ts} IS NOT NULL",
    ]
    conds += [f"({p})::float8 >= 0 AND ({p})::float8 <= 1" for p in s.probabilities]
    conds.append(f"abs({numpy_sum([f'({p})::float8' for p in s.probabilities])} - 1.0) <= :tolerance")
    if s.predicted_label is not None:
        conds.append(f"{s.predicted_label} IN :labels")
    if s.confidence is not None:
        conds.append(f"({s.confidence})::float8 >= 0 AND ({s.confidence})::float8 <= 1")
    conds += [_finite(x) for x in s.numeric]
    conds += [f"{c} IS NOT NULL AND btrim(CAST({c} AS text)) <> ''" for c in s.categorical]
    conds += [_finite(e) for e in s.embedding]
    return " AND ".join(f"({c})" for c in conds)


def segment_case(s: SourceSql, n_segments: int) -> str:
    whens = " ".join(f"WHEN {s.ts} >= :s{i} AND {s.ts} < :e{i} THEN {i}" for i in range(n_segments))
    return f"CASE {whens} END"


def raw_confidence(s: SourceSql) -> str:
    """The confidence validation gives a row: the logged one, else the top raw probability."""
    if s.confidence is not None:
        return f"({s.confidence})::float8"
    return f"GREATEST({', '.join(f'({p})::float8' for p in s.probabilities)})"


def raw_predicted(s: SourceSql, labels: Sequence[str]) -> str:
    """The predicted label validation gives a row: the logged one, else the first top raw probability."""
    if s.predicted_label is not None:
        return f"CAST({s.predicted_label} AS text)"
    top = raw_confidence(s)
    return (
        "CASE " + " ".join(f"WHEN ({p})::float8 = {top} THEN :label{j}" for j, p in enumerate(s.probabilities)) + " END"
    )


def rounded(p: str, decimals: int) -> str:
    scale = f"{10.0**decimals!r}::float8"
    return f"(round(({p})::real::float8 * {scale}) / {scale})"


def profile_query(s: SourceSql, model: ModelSettings, n_segments: int, n_edges: dict[str, int]) -> str:
    """Per (segment, column, cell or category): count, sum, sum of squares, min, max, in one scan.

    ``n_edges`` gives each numeric column's edge count; its edges are the parameter ``:edges_<i>``.
    """
    k = len(model.class_labels)
    d = model.output_decimals
    probs = [f"q{j}" for j in range(k)]
    # the second largest is the largest of the pairwise minima (a tie at the top gives the top)
    second = f"GREATEST({', '.join(f'LEAST({a}, {b})' for i, a in enumerate(probs) for b in probs[i + 1 :])})"
    entropy = "-" + numpy_sum([f"(CASE WHEN {p} > 0 THEN {p} * ln({p}) ELSE 0.0::float8 END)" for p in probs])
    predicted = "CASE " + " ".join(f"WHEN q{j} = o_conf THEN :label{j}" for j in range(k)) + " END"
    inner = [f"{segment_case(s, n_segments)} AS seg"]
    inner += [f"({x})::float8 AS f{i}" for i, x in enumerate(s.numeric)]
    inner += [f"CAST({c} AS text) AS g{i}" for i, c in enumerate(s.categorical)]
    inner += [f"{rounded(p, d)} AS q{j}" for j, p in enumerate(s.probabilities)]
    numeric_names = [
        *model.numeric_features,
        *(f"prob_{lab}" for lab in model.class_labels),
        "confidence",
        "margin",
        "entropy",
    ]
    values = [f"f{i}" for i in range(len(s.numeric))] + probs + ["o_conf", "o_conf - o_second", "o_entropy"]
    rows = []
    for i, (name, x) in enumerate(zip(numeric_names, values, strict=True)):
        rows.append(f"({i}, {_cell(x, n_edges[name], i)}, {x}, NULL::text)")
    base = len(numeric_names)
    cats = [f"g{i}" for i in range(len(s.categorical))] + ["o_predicted"]
    rows += [f"({base + i}, NULL::integer, NULL::float8, {c})" for i, c in enumerate(cats)]
    # each step is fenced by OFFSET 0: inlined, every use of a derived value (34 of them in
    # the unpivot, each read three times) would recompute it from the raw columns
    return f"""
SELECT seg, u.col, u.cell, u.val, count(*), sum(u.x), sum(u.x * u.x), min(u.x), max(u.x)
FROM (
  SELECT top.*, {predicted} AS o_predicted FROM (
    SELECT src.*, GREATEST({", ".join(probs)}) AS o_conf, {second} AS o_second, {entropy} AS o_entropy FROM (
      SELECT {", ".join(inner)} FROM {s.relation} AS src
      WHERE {s.ts} >= :start AND {s.ts} < :end AND {s.version} = :version AND {valid_rows(s, model)}
      OFFSET 0
    ) AS src OFFSET 0
  ) AS top OFFSET 0
) AS out CROSS JOIN LATERAL (VALUES {", ".join(rows)}) AS u(col, cell, x, val)
WHERE seg IS NOT NULL
GROUP BY seg, u.col, u.cell, u.val
"""


def _cell(x: str, n_edges: int, i: int | str) -> str:
    """Edges below ``x`` plus edges up to ``x``: ``n - width_bucket(-x, -edges) + width_bucket(x, edges)``."""
    if n_edges == 0:
        return "0"
    return f"({n_edges} - width_bucket(-({x}), :neg_edges_{i}) + width_bucket({x}, :edges_{i}))"


def rows_query(s: SourceSql, model: ModelSettings, n_segments: int, *, where: str, order: str, limit: str) -> str:
    """Accepted rows of ``version`` (the few a finding needs), with the columns a frame is built from."""
    cols = [
        f"{segment_case(s, n_segments)} AS seg",
        f"CAST({s.prediction_id} AS text) AS pid",
        f"md5(CAST({s.prediction_id} AS text)) AS dk_key",
        f"{raw_confidence(s)} AS conf",
        f"{raw_predicted(s, model.class_labels)} AS pred",
        f"{s.input_uri if s.input_uri is not None else 'NULL'} AS uri",
    ]
    cols += [f"({p})::float8 AS p{j}" for j, p in enumerate(s.probabilities)]
    cols += [f"({x})::float8 AS f{i}" for i, x in enumerate(s.numeric)]
    cols += [f"CAST({c} AS text) AS g{i}" for i, c in enumerate(s.categorical)]
    cols += [f"({e})::float8 AS e{i}" for i, e in enumerate(s.embedding)]
    return f"""
SELECT * FROM (
  SELECT r.*, row_number() OVER (PARTITION BY seg ORDER BY {order}) AS dk_rank FROM (
    SELECT {", ".join(cols)} FROM {s.relation} AS src
    WHERE {s.ts} >= :start AND {s.ts} < :end AND {s.version} = :version AND {valid_rows(s, model)}
  ) AS r WHERE seg IS NOT NULL AND {where}
) AS ranked WHERE dk_rank <= {limit}
"""


def accepted_rows(
    s: SourceSql, model: ModelSettings, n_segments: int, columns: Sequence[str] = (), *, where: str = "TRUE"
) -> str:
    """``seg, pid, conf, pred, uri`` (and ``columns``) of the accepted rows of ``:version`` in a segment."""
    cols = [
        f"{segment_case(s, n_segments)} AS seg",
        f"CAST({s.prediction_id} AS text) AS pid",
        f"{raw_confidence(s)} AS conf",
        f"{raw_predicted(s, model.class_labels)} AS pred",
        f"{s.input_uri if s.input_uri is not None else 'NULL::text'} AS uri",
        *columns,
    ]
    return f"""SELECT * FROM (
    SELECT {", ".join(cols)} FROM {s.relation} AS src
    WHERE {s.ts} >= :start AND {s.ts} < :end AND {s.version} = :version AND {valid_rows(s, model)}
  ) AS a WHERE seg IS NOT NULL AND {where}"""


def scored_rows(
    s: SourceSql, model: ModelSettings, n_segments: int, score: MahalanobisSql | None, *, where: str = "TRUE"
) -> str:
    """:func:`accepted_rows` with each row's outlier ``score`` (NULL without a detector)."""
    if score is None:
        return f"SELECT a.*, NULL::float8 AS score FROM ({accepted_rows(s, model, n_segments, where=where)}) AS a"
    keep = "seg, pid, conf, pred, uri"
    centred = accepted_rows(s, model, n_segments, score.centred(s.embedding), where=where)
    carried = keep if score.squares else ", ".join([keep, *(f"dk_c{i}" for i in range(score.width))])
    projected = f"SELECT {carried}, {', '.join(score.projected())} FROM ({centred} OFFSET 0) AS c"
    return f"SELECT {keep}, {score.distance()} AS score FROM ({projected} OFFSET 0) AS z OFFSET 0"


def calibration_query(
    s: SourceSql, model: ModelSettings, n_segments: int, n_knots: Sequence[int], score: MahalanobisSql | None
) -> str:
    """Rows per (segment, predicted label, cell of the confidence, far flag): the count, the sum
    of the confidences, and the sum and sum of squares of their distances to the cell's
    reference point (see :mod:`jobs.pushdown.calibrated`). A row's cell is on the knots of part
    ``k`` (``:edges_cal<k>``, ``:neg_edges_cal<k>``, ``n_knots[k]`` of them; references
    ``:cal_ref<k>``): part ``k >= 1`` for rows predicted ``:cal_label<k>``, else part 0.
    ``far`` is ``score > :threshold``."""
    far = "score > :threshold" if score is not None else "FALSE"
    rows = scored_rows(s, model, n_segments, score)

    def by_part(value: Callable[[int], str]) -> str:
        if len(n_knots) == 1:
            return value(0)
        whens = " ".join(f"WHEN :cal_label{k} THEN {value(k)}" for k in range(1, len(n_knots)))
        return f"CASE pred {whens} ELSE {value(0)} END"

    cell = by_part(lambda k: _cell("conf", n_knots[k], f"cal{k}"))
    ref = by_part(lambda k: f"(CAST(:cal_ref{k} AS float8[]))[cell + 1]")
    return f"""
SELECT seg, pred, cell, far, count(*), sum(conf), sum(conf - ref), sum((conf - ref) * (conf - ref)) FROM (
  SELECT seg, pred, conf, far, cell, {ref} AS ref FROM (
    SELECT seg, pred, conf, {far} AS far, {cell} AS cell FROM ({rows}) AS r OFFSET 0
  ) AS c
) AS t GROUP BY seg, pred, cell, far
"""


def outlier_query(s: SourceSql, model: ModelSettings, n_segments: int, score: MahalanobisSql) -> str:
    """The confident outliers (``conf >= :min_confidence``, ``score > :threshold``): each segment's
    ``:top_k`` highest, ordered as the local heap orders them (score, then prediction id, both
    descending; ids by code point), with the segment's count of them (``dk_n``)."""
    rows = scored_rows(s, model, n_segments, score, where="conf >= :min_confidence")
    return f"""
SELECT seg, pid, conf, pred, uri, score, dk_n FROM (
  SELECT r.*, row_number() OVER (PARTITION BY seg ORDER BY score DESC, pid COLLATE "C" DESC) AS dk_rank,
         count(*) OVER (PARTITION BY seg) AS dk_n
  FROM ({rows}) AS r WHERE score > :threshold
) AS ranked WHERE dk_rank <= :top_k
"""


def ids_query(s: SourceSql, model: ModelSettings) -> str:
    """``pid, conf, pred, uri`` of the accepted rows of ``:version`` in one segment (``:s0``, ``:e0``)
    whose prediction id is in ``:ids`` (text[])."""
    rows = accepted_rows(s, model, 1, where="pid = ANY(CAST(:ids AS text[]))")
    return f"SELECT pid, conf, pred, uri FROM ({rows}) AS a"


def rejected_query(s: SourceSql, model: ModelSettings, n_segments: int, per_segment: int) -> str:
    """Every column of up to ``per_segment`` rejected rows per segment, and each segment's total."""
    return f"""
SELECT * FROM (
  SELECT r.*, row_number() OVER (PARTITION BY dk_seg ORDER BY dk_pos) AS dk_rank,
         count(*) OVER (PARTITION BY dk_seg) AS dk_total
  FROM (
    SELECT src.*, {segment_case(s, n_segments)} AS dk_seg, {s.id_column} AS dk_pos
    FROM {s.relation} AS src
    WHERE {s.ts} >= :start AND {s.ts} < :end
      AND ({valid_rows(s, model)} AND {s.version} IN :known) IS NOT TRUE
  ) AS r WHERE dk_seg IS NOT NULL
) AS ranked WHERE dk_rank <= {per_segment}
"""
