"""The generic webhook: Alertmanager's webhook JSON (version 4), signed per Standard Webhooks.

Headers (https://www.standardwebhooks.com): ``webhook-id`` (one per message, the same on every
retry), ``webhook-timestamp`` (Unix seconds of the attempt) and, with a secret,
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
base64-decoded part of ``whsec_<base64>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from drift.errors import AlertDeliveryError
from jobs.alerts.alert import Alert, Message
from jobs.alerts.channel import Channel
from jobs.alerts.settings import AlertSettings, WebhookChannel, secret_key
from storage.clock import Clock, wall_clock

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not set" for endsAt


def _time(t: datetime | None) -> str:
    return ZERO_TIME if t is None else t.isoformat().replace("+00:00", "Z")


def _alert(alert: Alert, external_url: str) -> dict[str, Any]:
    return {
        "status": str(alert.status),
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _time(alert.starts_at),
        "endsAt": _time(alert.ends_at),
        "generatorURL": external_url,
        "fingerprint": alert.fingerprint,
    }


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = mappings
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def alertmanager_payload(message: Message, *, receiver: str, external_url: str | None) -> dict[str, Any]:
    """The body Alertmanager's webhook receiver sends, for one group of alerts."""
    url = external_url or ""
    labels = [dict(a.labels) for a in message.alerts]
    common_labels = _common(labels)
    group_labels = {k: common_labels[k] for k in ("model", "week") if k in common_labels}
    return {
        "version": "4",
        "groupKey": "{}:{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items())) + "}",
        "truncatedAlerts": 0,
        "status": str(message.status),
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([dict(a.annotations) for a in message.alerts]),
        "externalURL": url,
        "alerts": [_alert(a, url) for a in message.alerts],
    }


def sign(secret_key_bytes: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``.

    >>> sign(b"k" * 24, "msg_1", 1700000000, b"{}")
    'v1,E3sCg9uS8x43RKlJqcda1EcaYZxNkN+l2u7RBZBSZQQ='
    """
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class Webhook(Channel):
    name = "webhook"

    def __init__(self, config: WebhookChannel, settings: AlertSettings, *, clock: Clock = wall_clock) -> None:
        self._config = config
        self._settings = settings
        self._clock = clock  # the signature's timestamp is the attempt's real time
        self._ids: dict[str, str] = {}

    @property
    def secrets(self) -> tuple[str, ...]:
        secret = self._config.secret
        return () if secret is None else (secret.get_secret_value(), secret.get_secret_value()[6:])

    @property
    def target(self) -> str:
        parts = urlsplit(self._config.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def body(self, message: Message) -> bytes:
        payload = alertmanager_payload(
            message, receiver=self._config.receiver, external_url=self._settings.external_url
        )
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _message_id(self, message: Message) -> str:
        # one id per message, kept across its retries (receivers dedup on it)
        key = f"{message.group}|{','.join(f'{a.fingerprint}:{a.status}:{a.rank}' for a in message.alerts)}"
        return self._ids.setdefault(key, f"msg_{uuid.uuid4().hex}")

    def send(self, message: Message) -> None:
        body = self.body(message)
        message_id = self._message_id(message)
        timestamp = int(self._clock().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "driftkeeper-alerts",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._config.secret is not None:
            headers["webhook-signature"] = sign(secret_key(self._config.secret), message_id, timestamp, body)
        timeout = httpx.Timeout(self._settings.timeout_seconds)
        try:
            response = httpx.post(self._config.url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(self.name, f"{type(exc).__name__}: {exc or 'no answer'}") from exc
        if response.status_code >= 300:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise AlertDeliveryError(self.name, f"HTTP {response.status_code}", retryable=retryable)
