"""Where prediction logs and labels come from (``models[].predictions`` / ``labels``), and Spark.

A source is a SQL table or query (``kind: sql``; ``compute: pull`` ingests its rows,
``pushdown`` lets the check aggregate in the source database), a folder of dropped files
(``kind: files``), or a lake partitioned by day (``kind: lake``, profiled where it lies, with
pyarrow or Spark). Part of the settings of :mod:`jobs.config`, which re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceBase(_Strict):
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical field -> source column, for names that differ",
    )


class SqlSource(_SourceBase):
    kind: Literal["sql"]
    url: SecretStr
    table: str | None = None
    query: str | None = None
    id_column: str = "id"
    compute: Literal["pull", "pushdown"] = Field(
        "pull",
        description=(
            "pull: rows are ingested into driftkeeper's database; pushdown: the check computes histograms,"
            " counts and moments by GROUP BY in the source database and reads only aggregates and candidate rows"
        ),
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class FileSource(_SourceBase):
    kind: Literal["files"]
    path: Path
    pattern: str = "*"
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"


class LakeSource(_SourceBase):
    """Prediction logs kept in a Parquet (or Delta) lake partitioned by day, profiled where they lie."""

    kind: Literal["lake"]
    path: str = Field(min_length=1, description="a local path or an fsspec/Spark URI of the table's root")
    format: Literal["parquet", "delta"] = "parquet"
    partition_column: str = Field("day", description="the hive-style partition column holding the UTC date")
    compute: Literal["local", "spark"] = "spark"


Source = Annotated[SqlSource | FileSource | LakeSource, Field(discriminator="kind")]


class SparkSettings(_Strict):
    """Where Spark runs for lake sources with ``compute: spark`` (see README, "Scaling out")."""

    master: str = Field("local[2]", description="local[N] in tests; spark://host:7077, yarn, k8s://... in production")
    app_name: str = "driftkeeper"
    remote: str | None = Field(None, description="a Spark Connect URL (sc://host:15002) instead of a master")
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")
