"""A Delta table (written by delta-rs) gives the day states of the same rows as a Parquet lake,
read in this process and by Spark, and a later commit to one day is seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from jobs.config import Settings
from tests.jobs.lake.agree import assert_same_window
from tests.jobs.lake.conftest import World
from tests.jobs.lake.test_agreement import window_of

deltalake = pytest.importorskip("deltalake", reason="needs deltalake (pip install -e '.[dev]')")
# the table is read the same whatever driftkeeper's own database: one backend
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def as_delta(lake: Path, target: Path) -> Path:
    partitioning = ds.partitioning(pa.schema([("day", pa.string())]), flavor="hive")
    table = ds.dataset(lake, format="parquet", partitioning=partitioning).to_table()
    deltalake.write_deltalake(str(target), table, partition_by=["day"])
    return target


def delta(world: World, path: Path, compute: str) -> Settings:
    return world.with_source({"kind": "lake", "path": str(path), "format": "delta", "compute": compute})


def test_a_delta_table_gives_the_day_states_of_the_parquet_lake(world: World, tmp_path: Path) -> None:
    table = as_delta(world.lake, tmp_path / "delta")
    _, parquet = window_of(world, world.with_source({"kind": "lake", "path": str(world.lake), "compute": "local"}))
    _, local = window_of(world, delta(world, table, "local"))
    assert_same_window(parquet, local)


def test_spark_reads_the_delta_snapshot_without_delta_jars(world: World, tmp_path: Path, spark: Any) -> None:
    table = as_delta(world.lake, tmp_path / "delta")
    _, local = window_of(world, delta(world, table, "local"))
    _, by_spark = window_of(world, delta(world, table, "spark"))
    assert_same_window(local, by_spark)
    # overwrite one day (a new commit: new files, the old ones leave the snapshot)
    day = "2026-11-03"
    current = deltalake.DeltaTable(str(table)).to_pyarrow_dataset().to_table(filter=ds.field("day") == day)
    deltalake.write_deltalake(
        str(table), current.slice(0, current.num_rows // 2), mode="overwrite", predicate=f"day = '{day}'"
    )
    _, after = window_of(world, delta(world, table, "spark"))
    _, after_local = window_of(world, delta(world, table, "local"))
    assert after.profile is not None and local.profile is not None
    assert after.profile.n_rows == local.profile.n_rows - (current.num_rows - current.num_rows // 2)
    assert_same_window(after_local, after)
