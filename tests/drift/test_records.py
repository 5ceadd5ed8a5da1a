"""Record: a frozen dataclass's JSON and back, with errors naming the key."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from drift.errors import ValidationError
from drift.records import Record


@dataclasses.dataclass(frozen=True, kw_only=True)
class Point(Record):
    record_name = "point"
    at: datetime
    values: tuple[float, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Track(Record):
    record_name = "track"
    name: str
    points: tuple[Point, ...]
    note: str | None = None


def test_a_record_round_trips_through_json():
    track = Track(name="t", points=(Point(at=datetime(2026, 12, 1, tzinfo=UTC), values=(1.5, 2.0)),))
    data = json.loads(json.dumps(track.to_dict()))
    assert data == {"name": "t", "points": [{"at": "2026-12-01T00:00:00+00:00", "values": [1.5, 2.0]}], "note": None}
    assert Track.from_dict(data) == track


def test_a_bad_value_is_named_by_its_key():
    with pytest.raises(ValidationError, match=r"^track points\[0\]\.values\[1\]: "):
        Track.from_dict({"name": "t", "points": [{"at": "2026-12-01T00:00:00+00:00", "values": [1.0, "x"]}]})
