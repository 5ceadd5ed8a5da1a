"""The alert record every channel renders, and the text hygiene every value goes through.

An alert has an identity (``key``, hashed into the Alertmanager ``fingerprint``), labels that
identify it (fixed names, values cleaned to one line of valid UTF-8) and annotations that
describe it. Values from outside (a model, feature or column name, an error message) are
cleaned here once, so that no channel can be handed a broken payload.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

LABEL_MAX = 200
ANNOTATION_MAX = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class AlertStatus(StrEnum):
    """Alertmanager's two statuses."""

    FIRING = "firing"
    RESOLVED = "resolved"


class AlertKind(StrEnum):
    """What an alert is about (``alert_states.kind``)."""

    VERDICT = "verdict"  # a checked window's level rose (ok -> watch -> act)
    BLIND = "blind"  # a window with no usable rows of the champion
    RETRAIN = "retrain"  # a retrain ended: promoted, rejected or failed
    JOB_FAILED = "job_failed"
    TEST = "test"  # `driftkeeper alerts test`


ALERT_NAMES = {
    AlertKind.VERDICT: "DriftkeeperVerdict",
    AlertKind.BLIND: "DriftkeeperBlindWindow",
    AlertKind.RETRAIN: "DriftkeeperRetrain",
    AlertKind.JOB_FAILED: "DriftkeeperJobFailed",
    AlertKind.TEST: "DriftkeeperTest",
}


def _valid_utf8(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become '?'


def clean_label(value: object, limit: int = LABEL_MAX) -> str:
    """One line of valid UTF-8, at most ``limit`` characters: a valid Alertmanager label value.

    >>> clean_label('a"b\\r\\nBcc: x')
    'a"b  Bcc: x'
    """
    text = _CONTROL.sub(" ", _valid_utf8(str(value)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_text(value: object, limit: int = ANNOTATION_MAX) -> str:
    """Like :func:`clean_label`, but newlines are kept (annotations, bodies)."""
    text = _CONTROL_BUT_NEWLINE.sub(" ", _valid_utf8(str(value)).replace("\r\n", "\n").replace("\r", "\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fingerprint(key: str) -> str:
    """16 hex digits identifying an alert, as Alertmanager's fingerprints look.

    >>> fingerprint("verdict:digits:2026-W38")
    'a30cd1278a65dae7'
    """
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert as it is sent: firing (``ends_at`` None) or resolved."""

    key: str
    kind: AlertKind
    status: AlertStatus
    model: str | None
    group: str  # the message it is sent in: model and ISO week
    rank: int = 0  # for verdicts, the level's rank; what "rises" compares
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", self.labels.get("alertname", self.kind))

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "status": self.status,
            "model": self.model,
            "group": self.group,
            "rank": self.rank,
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
        }


def group_key(model: str | None, week: str) -> str:
    """The message an alert belongs to: one per model and ISO week."""
    return f"{clean_label(model or '-')}/{week}"


@dataclass(frozen=True, kw_only=True)
class Message:
    """The alerts of one group, sent together to each channel."""

    group: str
    alerts: tuple[Alert, ...]

    @property
    def status(self) -> AlertStatus:
        firing = any(a.status == AlertStatus.FIRING for a in self.alerts)
        return AlertStatus.FIRING if firing else AlertStatus.RESOLVED

    @property
    def title(self) -> str:
        count = f" ({len(self.alerts)} alerts)" if len(self.alerts) > 1 else ""
        return clean_label(f"[{self.status.upper()}] driftkeeper {self.group}: {self.alerts[0].summary}{count}")


def group_messages(alerts: list[Alert]) -> list[Message]:
    """The alerts grouped per model and week, in the order their groups first appear."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.group, []).append(alert)
    return [Message(group=g, alerts=tuple(a)) for g, a in groups.items()]
