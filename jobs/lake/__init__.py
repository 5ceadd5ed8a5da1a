"""Profiling prediction logs where they lie: a Parquet/Delta lake, with pyarrow or Spark.

Each engine builds, for a model version's days, the same mergeable per-day state as a pass
over stored rows (:mod:`jobs.check.windows`): a :class:`~drift.profile.WindowProfile` and a
:class:`~jobs.check.state.DayFindings`. The check stores those days like local ones; no row
is copied into driftkeeper's database. The base every engine implements is
:mod:`jobs.lake.base`; :func:`jobs.lake.engine.external_days` picks the engine of a model.
"""
