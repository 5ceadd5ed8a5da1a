"""``to_dict``/``from_dict`` for frozen result dataclasses whose JSON is stored or written.

:class:`Record` gives a dataclass the JSON it is stored as (keys in field order, tuples as
lists, nested records by their own ``to_dict``, enums by value, datetimes as ISO 8601) and
reads it back validated by pydantic, raising :class:`~drift.errors.ValidationError` that names
the key that does not fit. Subclasses set ``record_name`` for that message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Self, cast

import pydantic

from drift.errors import ValidationError


def plain(value: Any) -> Any:
    """``value`` as JSON data: records by their ``to_dict``, tuples as lists."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@cache
def _adapter(cls: type) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(cls)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Record:
    """Mixed into a frozen dataclass: its JSON and back."""

    record_name: ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read back :meth:`to_dict` (also after a trip through JSON).

        Raises:
            ValidationError: a key is missing or has a value of the wrong type.
        """
        try:
            result: Self = _adapter(cast(type, cls)).validate_python(data)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = _where(tuple(first["loc"])) or "(top level)"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise ValidationError(f"{cls.record_name} {where}: {first['msg']}{more}") from exc
        return result
