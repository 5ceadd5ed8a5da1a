"""Settings: one YAML file plus ``DRIFTKEEPER__SECTION__KEY`` environment overrides.

The file is found via ``-c PATH``, then ``$DRIFTKEEPER_CONFIG``, then ``./driftkeeper.yaml``;
with none of them, the defaults apply (SQLite under ``./var/``, no monitored models).
Rules between fields live in validators here, not in the CLI.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from drift.errors import ConfigError
from jobs.alerts.settings import AlertSettings
from jobs.ingest.settings import FileSource, LakeSource, Source, SparkSettings, SqlSource
from jobs.metrics.settings import MetricsSettings
from jobs.ml.contract import ModelContract
from jobs.review.settings import ReviewSettings

CONFIG_ENV = "DRIFTKEEPER_CONFIG"
DEFAULT_CONFIG_NAME = "driftkeeper.yaml"
DEFAULT_DATABASE_URL = "sqlite:///var/driftkeeper.db"
CONFIG_SEARCH = f"-c PATH, ${CONFIG_ENV}, ./{DEFAULT_CONFIG_NAME}"

FEATURE_TYPES = ("numeric", "categorical")
TASKS = ("classification", "segmentation")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Strict):
    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)


class PathSettings(_Strict):
    var_dir: Path = Path("var")
    models_dir: Path = Path("var/models")
    reports_dir: Path = Path("var/reports")


class IngestSettings(_Strict):
    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    probability_tolerance: float = Field(0.01, gt=0, lt=1)
    retention_days: int | None = Field(None, ge=1)
    max_reject_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a batch with more than this share of its rows rejected for one reason stops the job (1: never)",
    )
    breaker_min_rows: int = Field(20, ge=1, description="batches smaller than this never trip the circuit breaker")


class FeatureSpec(_Strict):
    name: str = Field(min_length=1)
    type: Literal["numeric", "categorical"] = "numeric"


class ColumnGroup(_Strict):
    """Where an array (probabilities, embedding) sits in the source rows.

    Either one ``column`` holding a JSON array (or a list, in Parquet), or ``columns``
    listing one scalar column per element.
    """

    column: str | None = None
    columns: tuple[str, ...] | None = Field(None, min_length=1)
    size: int | None = Field(None, ge=1, description="array length; needed with 'column' for embeddings")

    @model_validator(mode="after")
    def _one_of(self) -> ColumnGroup:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give exactly one of 'column' (a JSON array column) or 'columns' (a list)")
        if self.columns is not None and self.size is not None and self.size != len(self.columns):
            raise ValueError(f"size {self.size} does not match the {len(self.columns)} columns listed")
        return self

    @property
    def width(self) -> int | None:
        return len(self.columns) if self.columns is not None else self.size


class ColumnOverride(_Strict):
    method: str | None = None
    threshold: float | None = Field(None, gt=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is not None:
            from drift.methods import DriftMethod

            DriftMethod.get(value)  # raises UnknownMethodError (a ValueError) listing the registered keys
        return value


class DriftSettings(_Strict):
    """How a model's windows are compared with its reference (see drift.verdict)."""

    window_days: int = Field(7, ge=1, le=366)
    correction: Literal["none", "bonferroni", "bh"] = "bh"
    method_rule: Literal["stat_test", "evidently"] = "stat_test"
    min_effect: float = Field(0.02, ge=0, lt=1)
    feature_share: float | None = Field(0.0, ge=0, lt=1)
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)
    reference_sample_size: int = Field(2000, ge=100, le=100_000)
    revise_weeks: int = Field(
        3, ge=0, le=12, description="complete weeks checked again when late labels arrive (0: never)"
    )
    slices: tuple[str, ...] | None = Field(
        None, description="categorical features the weekly report slices by (None: all; []: none)"
    )
    slice_top_k: int = Field(5, ge=1, le=50, description="values shown per sliced feature; the rest is 'other'")
    baseline_version: int | None = Field(
        None, ge=1, description="the report's second baseline (default: the lowest version with a reference set)"
    )


class RetrainPolicy(_Strict):
    """Which findings of a check make its window retrain-worthy (any one is enough)."""

    outputs_drifted: bool = True
    embedding_drifted: bool = True
    feature_share_above: float | None = Field(0.5, ge=0, le=1)
    confidently_wrong_rise: bool = True
    confident_outlier_rate_above: float | None = Field(0.05, ge=0, le=1)
    estimated_accuracy_drop: float | None = Field(0.05, ge=0, le=1)
    realized_accuracy_drop: float | None = Field(0.05, ge=0, le=1)
    mean_iou_drop: float | None = Field(0.1, ge=0, le=1, description="segmentation: mean IoU below the reference's")


class RetrainSettings(_Strict):
    """When and how a model is retrained, and what a challenger must prove (see jobs.retrain.job)."""

    min_new_labels: int = Field(200, ge=1, description="labelled production samples needed since the champion")
    cooldown_hours: float = Field(24, ge=0)
    lease_minutes: int = Field(60, ge=1)
    mode: Literal["head", "full"] = "head"
    epochs: int = Field(5, ge=1, le=500)
    seed: int = 0
    recent_days: float = Field(28, gt=0, description="labelled samples this recent are used")
    holdout_share: float = Field(0.3, gt=0, lt=1)
    min_holdout: int = Field(30, ge=1, description="the gate judges on at least this many held-out samples")
    drifted_weight: float = Field(
        0.8, ge=0, le=1, description="share of the gate's held-out score carried by the drifted window's samples"
    )
    min_drifted_labels: int = Field(
        60, ge=0, description="labelled samples from the drifted window needed before a retrain starts"
    )
    min_accuracy_gain: float = Field(0.02, ge=0, le=1, description="on the held-out recent slice")
    max_test_accuracy_drop: float = Field(0.02, ge=0, le=1, description="on the original test set")
    size_budget_bytes: int = Field(4_000_000, ge=1)
    min_export_agreement: float = Field(
        0.99, gt=0, le=1, description="float32 and dynamic TFLite files: class-argmax agreement with Keras"
    )
    min_int8_agreement: float = Field(0.97, gt=0, le=1, description="the int8 TFLite file's agreement with Keras")
    training_data: str | None = Field(
        None,
        description=(
            "the champion's training data: an .npz (x_train, y_train, x_test, y_test), a folder of class"
            " subfolders (optionally under train/ and test/), or a CSV/Parquet manifest uri,label[,split];"
            " a local path or an s3://, gs://, https:// URI"
        ),
    )
    test_share: float = Field(
        0.1, gt=0, lt=1, description="share of a folder or manifest without splits kept as the original test set"
    )
    shift_pixels: int = Field(
        0, ge=0, le=32, description="augmentation: every training image shifted by up to this many pixels"
    )
    head_shift_copies: int = Field(
        1, ge=0, le=8, description="head mode with shift_pixels: shifted copies of each image's features"
    )
    batch_size: int = Field(32, ge=1, le=4096)
    max_train_samples: int | None = Field(
        None, ge=1, description="cap on the training set (confidently-wrong samples always stay)"
    )
    teacher_path: Path | None = Field(
        None, description="a larger .keras model that labels unlabelled recent samples it is sure of"
    )
    teacher_min_confidence: float = Field(0.95, gt=0, le=1)
    custom_command: tuple[str, ...] | None = Field(
        None, description="a trainer run as COMMAND SPEC.json; it must write the .keras file named in the spec"
    )


class ModelSettings(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    task: Literal["classification", "segmentation"] = "classification"
    class_labels: tuple[str, ...] = Field(min_length=2)
    features: tuple[FeatureSpec, ...] = ()
    probabilities: ColumnGroup = ColumnGroup(column="probabilities")
    embedding: ColumnGroup | None = None
    predictions: Source | None = None
    labels: Source | None = None
    confidence_threshold: float = Field(0.9, gt=0, le=1)
    iou_threshold: float = Field(
        0.5, gt=0, le=1, description="segmentation: a confident mask with a mean IoU below this is confidently wrong"
    )
    output_decimals: int = Field(
        6, ge=1, le=12, description="probabilities are compared at this precision (what the app logs)"
    )
    drift: DriftSettings = DriftSettings()
    retrain_when: RetrainPolicy = RetrainPolicy()
    retrain: RetrainSettings = RetrainSettings()
    image_roots: tuple[str, ...] = Field(
        (),
        description=(
            "where input images may be read from (thumbnails, retraining): local folders or URI prefixes"
            " (s3://bucket/prefix/, gs://..., https://host/path/); nothing else is read"
        ),
    )
    contract: ModelContract | None = Field(
        None, description="the model's input, preprocessing, output kind and layers (jobs.ml.contract)"
    )

    @field_validator("image_roots", mode="before")
    @classmethod
    def _roots_as_str(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

    @field_validator("class_labels", mode="before")
    @classmethod
    def _labels_as_str(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            value = tuple(str(v) for v in value)
            too_long = [v for v in value if len(v) > 200]
            if too_long:
                raise ValueError(f"class labels are at most 200 characters; too long: {too_long[0][:40]}...")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ModelSettings:
        if len(set(self.class_labels)) != len(self.class_labels):
            raise ValueError("class_labels must be unique")
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicated)}")
        if self.embedding is not None and self.embedding.width is None:
            raise ValueError("embedding: give 'size' (the embedding length) with 'column'")
        unknown = sorted(set(self.drift.columns) - set(self.monitored_columns))
        if unknown:
            raise ValueError(
                f"drift.columns names unknown columns: {', '.join(unknown)}; known: {', '.join(self.monitored_columns)}"
            )
        not_categorical = sorted(set(self.drift.slices or ()) - set(self.categorical_features))
        if not_categorical:
            raise ValueError(
                f"drift.slices names no categorical feature: {', '.join(not_categorical)}; "
                f"categorical features: {', '.join(self.categorical_features) or '(none)'}"
            )
        width = self.probabilities.width
        if width is not None and width != len(self.class_labels):
            raise ValueError(f"probabilities: {width} values per row but {len(self.class_labels)} class_labels")
        return self

    @property
    def monitored_columns(self) -> tuple[str, ...]:
        """Feature columns and the derived output columns, as the drift engine names them."""
        outputs = [f"prob_{label}" for label in self.class_labels] + ["confidence", "margin", "entropy", "predicted"]
        return tuple(f.name for f in self.features) + tuple(outputs)

    def ingested_source(self, stream: str) -> SqlSource | FileSource | None:
        """The source of ``stream`` whose rows ingestion pulls into driftkeeper's database.

        None when there is none, or when its rows stay where they are: a lake source, or a SQL
        source with ``compute: pushdown`` (the check reads aggregates from them instead).
        """
        source = self.predictions if stream == "predictions" else self.labels
        if source is None or isinstance(source, LakeSource):
            return None
        if isinstance(source, SqlSource) and source.compute == "pushdown" and stream == "predictions":
            return None
        return source

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.type == "numeric")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.type == "categorical")


class ScheduleSettings(_Strict):
    """When ``driftkeeper serve`` runs each job (APScheduler 3 triggers, in ``timezone``)."""

    timezone: str = "UTC"
    ingest_every_minutes: int = Field(15, ge=1)
    labels_every_minutes: int = Field(60, ge=1)
    check_cron: str = Field("0 2 * * *", description="crontab: daily at 02:00")
    report_cron: str = Field("0 6 * * mon", description="crontab: Mondays at 06:00")
    retrain_after_check: bool = True
    misfire_grace_seconds: int = Field(6 * 3600, ge=60, description="a run missed by less than this still runs")
    daemon_lease_seconds: int = Field(120, ge=10)

    @field_validator("check_cron", "report_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression ({exc}); e.g. '0 2 * * *'") from exc
        return value


class Settings(BaseSettings):
    """All of driftkeeper's configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTKEEPER__",  # see ENV_PREFIX
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,  # a bad value may be a secret (a URL with a password, a token)
    )

    database: DatabaseSettings = DatabaseSettings()
    paths: PathSettings = PathSettings()
    ingest: IngestSettings = IngestSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    review: ReviewSettings = ReviewSettings()
    spark: SparkSettings = SparkSettings()
    storage: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        repr=False,
        description=(
            "fsspec options per protocol for images and training data, e.g. s3: {endpoint_url: ...};"
            " put keys and secrets in the environment (DRIFTKEEPER__STORAGE__S3__SECRET)"
        ),
    )
    models: tuple[ModelSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_models(self) -> Settings:
        names = [m.name for m in self.models]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicated)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment overrides the file; the file's content arrives as init kwargs
        return env_settings, init_settings

    def model(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        from drift.errors import ModelNotFound

        raise ModelNotFound(name)

    def select_models(self, name: str | None) -> tuple[ModelSettings, ...]:
        return self.models if name is None else (self.model(name),)


def find_config(explicit: Path | None = None) -> Path | None:
    """The config file to use: ``explicit``, then ``$DRIFTKEEPER_CONFIG``, then ``./driftkeeper.yaml``."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) does not exist")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_settings(path: Path | None = None, *, search: bool = True) -> Settings:
    """Read and validate the settings; errors name the file, the key and what is allowed."""
    config_path = find_config(path) if search else path
    data: dict[str, Any] = {}
    source = "environment and defaults"
    if config_path is not None:
        source = str(config_path)
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping of sections")
        data = loaded or {}
    unknown_environment_sections()
    try:
        return Settings(**data)
    except PydanticValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, data)) from exc


ENV_PREFIX = "DRIFTKEEPER__"


def unknown_environment_sections() -> None:
    """A ``DRIFTKEEPER__`` variable naming no section is a typo, never ignored.

    pydantic-settings reads only the variables of known sections, so ``DRIFTKEEPER__DATABSE__URL``
    (or ``DRIFTKEEPER__DATABASE_URL``) would otherwise leave the default database in place.
    """
    sections = set(Settings.model_fields)
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in sections:
            close = difflib.get_close_matches(section, sorted(sections), n=1)
            hint = f"; did you mean {ENV_PREFIX}{close[0].upper()}__...?" if close else ""
            raise ConfigError(
                f"environment variable {name}: no configuration section {section!r} "
                f"(sections: {', '.join(sorted(sections))}){hint}"
            )


def format_validation_error(source: str, exc: PydanticValidationError, data: dict[str, Any]) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = _dotted(err["loc"], data)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        variable = _environment_variable(err["loc"])
        if variable is not None:  # the key came from the environment, not from the file
            key = f"{variable} (environment variable, key {key})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _environment_variable(loc: tuple[Any, ...]) -> str | None:
    """The ``DRIFTKEEPER__SECTION__KEY`` variable set for this location, if any (names are case-insensitive)."""
    wanted = ("DRIFTKEEPER__" + "__".join(str(part) for part in loc)).upper()
    return next((name for name in os.environ if name.upper() == wanted), None)


def _dotted(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """``('models', 0, 'features', 1, 'type')`` -> ``models[digits].features[1].type``."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            name = None
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], dict):
                name = node[item].get("name")
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name if name else item}]"]
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            if item in ("sql", "files"):  # discriminated-union tag in pydantic's location
                continue
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
