"""The one error hierarchy of driftkeeper.

Every error raised on purpose by driftkeeper derives from :class:`DriftkeeperError`,
so a caller (the CLI, the scheduler, a notebook) can catch one class. Errors coming
from evidently, TensorFlow or SQLAlchemy are translated at the boundary with
``raise ... from exc``.

::

    DriftkeeperError
    ├── ConfigError                  bad or missing configuration (file, key, allowed values)
    │   └── ContractMismatchError(key, source, expected, actual)  config and model file disagree
    ├── ValidationError              a value or argument that breaks a rule (also a ValueError)
    │   ├── InvalidSpecError         a column spec / method / threshold that cannot be used
    │   ├── UnknownMethodError       a drift method or correction that is not registered
    │   ├── InsufficientDataError    too few rows for the requested computation
    │   ├── IncompatibleProfilesError  profiles built on different bins / columns
    │   ├── BadInputError            an input file, row or field that cannot be read
    │   └── SourceRejectedError      a batch mostly rejected for one reason (the ingest circuit breaker)
    ├── NotFoundError                something looked up by id does not exist (also a LookupError)
    │   ├── ModelNotFound(model)
    │   ├── ModelVersionNotFound(model, version)
    │   └── ReferenceSetNotFound(model, version)
    ├── StorageError                 the database refused or is unreachable
    │   └── NoDatabaseError(database)  no driftkeeper schema there yet
    ├── LeaseHeldError(name, holder) another process holds the lock / lease
    ├── TrainingError                the trainer failed
    ├── ExportError                  a TFLite export or its verification failed
    └── AlertDeliveryError(channel)  an alert channel did not take a message (recorded, never raised to a job)
"""

from __future__ import annotations


class DriftkeeperError(Exception):
    """Root of every error driftkeeper raises on purpose."""


class ConfigError(DriftkeeperError):
    """The configuration is missing or invalid.

    The message names the file, the key and what is allowed.
    """


class ContractMismatchError(ConfigError):
    """A model contract key (``models[].contract``) disagrees with the model file.

    Args:
        key: the config key, e.g. ``"contract.height"``.
        source: the model file (or what was read).
        expected: what the config says.
        actual: what the file has.
        shape: the file's whole input shape, when the key is part of it.
    """

    def __init__(self, key: str, source: str, expected: object, actual: object, *, shape: object = None) -> None:
        self.key, self.source, self.expected, self.actual = key, source, expected, actual
        whole = f" (input shape {shape})" if shape is not None else ""
        super().__init__(f"{key}: the config says {expected}, {source} has {actual}{whole}")


class ValidationError(DriftkeeperError, ValueError):
    """A value or argument breaks a rule."""


class InvalidSpecError(ValidationError):
    """A column spec, method choice or threshold cannot be used."""


class UnknownMethodError(ValidationError):
    """A method name that is not in the registry.

    Args:
        kind: what was looked up, e.g. ``"drift method"``.
        name: the unknown name.
        allowed: the registered names, listed in the message.
    """

    def __init__(self, kind: str, name: str, allowed: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.allowed = tuple(sorted(allowed))
        super().__init__(f"unknown {kind} {name!r}; allowed: {', '.join(self.allowed)}")


class InsufficientDataError(ValidationError):
    """Too few rows (or labelled rows) for a computation."""


class IncompatibleProfilesError(ValidationError):
    """Profiles that cannot be merged or compared (different columns or bin edges)."""


class BadInputError(ValidationError):
    """An input file, row or field that cannot be read.

    Args:
        source: the file or table the input came from.
        reason: what is wrong.
        position: the row (or other position) within the source, if known.
        field: the field at fault, if known.
    """

    def __init__(
        self, source: str, reason: str, *, position: str | int | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.reason = reason
        self.position = position
        self.field = field
        where = source
        if position is not None:
            where += f", row {position}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


class SourceRejectedError(ValidationError):
    """More than the allowed share of one batch was rejected for the same reason.

    Nothing of the batch is kept and the source's watermark stays before it, so the job is safe
    to rerun once the cause (a config typo, an unregistered version) is fixed.

    Args:
        source: the file or table.
        reason: the most common rejection reason (one example of it).
        field: the field that reason names, if any.
        rejected: rows of the batch rejected for that reason.
        rows: rows in the batch.
    """

    def __init__(self, source: str, reason: str, *, field: str | None, rejected: int, rows: int) -> None:
        self.source = source
        self.reason = reason
        self.field = field
        self.rejected = rejected
        self.rows = rows
        named = f"field {field!r}: " if field else ""
        super().__init__(f"source rejected: {named}{reason}, {rejected:,} of {rows:,} rows ({source})")


class NotFoundError(DriftkeeperError, LookupError):
    """Something looked up by id does not exist."""


class ModelNotFound(NotFoundError):
    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"model {model!r} is not registered")


class ModelVersionNotFound(NotFoundError):
    def __init__(self, model: str, version: int) -> None:
        self.model = model
        self.version = version
        super().__init__(f"model {model!r} has no version {version}")


class ReferenceSetNotFound(NotFoundError):
    def __init__(self, model: str, version: int) -> None:
        self.model = model
        self.version = version
        super().__init__(f"model {model!r} version {version} has no reference set")


class StorageError(DriftkeeperError):
    """The database refused an operation or cannot be reached."""


class NoDatabaseError(StorageError):
    """No driftkeeper schema at ``database`` (a missing SQLite file or an empty database)."""

    def __init__(self, database: str) -> None:
        self.database = database
        super().__init__(f"no driftkeeper database at {database}: run `driftkeeper db upgrade`")


class LeaseHeldError(DriftkeeperError):
    """Another process holds the lease (lock) named ``name``."""

    def __init__(self, name: str, holder: str, until: str | None = None) -> None:
        self.name = name
        self.holder = holder
        self.until = until
        msg = f"lease {name!r} is held by {holder}"
        if until:
            msg += f" until {until}"
        super().__init__(msg)


class TrainingError(DriftkeeperError):
    """The trainer failed; the champion is untouched."""


class ExportError(DriftkeeperError):
    """A TFLite export, or its verification, failed."""


class AlertDeliveryError(DriftkeeperError):
    """A channel did not accept a message; ``retryable`` is False for answers that will not change."""

    def __init__(self, channel: str, detail: str, *, retryable: bool = True) -> None:
        self.channel = channel
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"{channel}: {detail}")
