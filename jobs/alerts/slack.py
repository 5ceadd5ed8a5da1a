"""Slack incoming webhooks (slack_sdk's ``WebhookClient``): Block Kit blocks plus a text fallback.

Every value is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a hostile name can neither
mention ``@channel`` nor forge a link. The webhook URL is the secret: it never appears in an
error or a log line (slack_sdk's own logging is silenced for the same reason).
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.webhook import WebhookClient

from drift.errors import AlertDeliveryError
from jobs.alerts.alert import Alert, AlertStatus, Message, clean_label
from jobs.alerts.channel import Channel
from jobs.alerts.settings import AlertSettings, SlackChannel

MAX_ALERT_BLOCKS = 20  # Slack takes 50 blocks per message
_SECTION_MAX = 2900  # Slack's limit is 3000 characters per section
_HEADER_MAX = 150


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters as entities.

    >>> escape_mrkdwn("<script>&<!channel>")
    '&lt;script&gt;&amp;&lt;!channel&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(alert: Alert) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.status == AlertStatus.RESOLVED else ":rotating_light:"
    labels = ", ".join(f"{k}={v}" for k, v in alert.labels.items() if k != "alertname")
    text = f"{icon} *{escape_mrkdwn(alert.summary)}*\n{escape_mrkdwn(alert.annotations.get('description', ''))}"
    if labels:
        text += f"\n_{escape_mrkdwn(labels)}_"
    if len(text) > _SECTION_MAX:
        text = text[: _SECTION_MAX - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_payload(message: Message) -> dict[str, Any]:
    """``text`` (notifications, old clients) and ``blocks`` for one group of alerts."""
    shown = message.alerts[:MAX_ALERT_BLOCKS]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clean_label(message.title, _HEADER_MAX)}},
        *(_section(a) for a in shown),
    ]
    if len(message.alerts) > len(shown):
        more = len(message.alerts) - len(shown)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]})
    return {"text": escape_mrkdwn(message.title), "blocks": blocks}


def _quiet_logger() -> logging.Logger:
    """A logger for slack_sdk that is never shown: its debug lines would print the URL."""
    quiet = logging.Logger("driftkeeper.alerts.slack_sdk", level=logging.CRITICAL + 1)
    quiet.addHandler(logging.NullHandler())
    return quiet


class Slack(Channel):
    name = "slack"

    def __init__(self, config: SlackChannel, settings: AlertSettings) -> None:
        self._url = config.webhook_url.get_secret_value()
        self._client = WebhookClient(
            self._url,
            timeout=max(1, math.ceil(settings.timeout_seconds)),
            retry_handlers=[],  # retries are deliver()'s, with its backoff
            logger=_quiet_logger(),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        parts = urlsplit(self._url)
        return (self._url, parts.path, parts.query) if parts.path not in ("", "/") else (self._url, parts.query)

    @property
    def target(self) -> str:
        return f"{urlsplit(self._url).hostname}"

    def send(self, message: Message) -> None:
        payload = slack_payload(message)
        try:
            response = self._client.send(text=payload["text"], blocks=payload["blocks"])
        except Exception as exc:  # urllib's errors: refused, timed out, TLS
            raise AlertDeliveryError(self.name, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            body = clean_label(response.body or "", 200)
            raise AlertDeliveryError(self.name, f"HTTP {response.status_code} {body}".strip(), retryable=retryable)
