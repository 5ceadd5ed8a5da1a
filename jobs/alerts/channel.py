"""What every channel shares: the error, the delivery result, retries with backoff, redaction.

A channel sends one :class:`~jobs.alerts.alert.Message` per call and raises
:class:`AlertDeliveryError` (or a transport error) when it was not accepted; :func:`deliver`
retries it with exponential backoff (tenacity), each attempt bounded by the channel's timeout,
and never raises: it returns a :class:`Delivery` whose error has every secret replaced by ``***``.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from drift.errors import AlertDeliveryError
from jobs.alerts.alert import Message, clean_label
from jobs.alerts.settings import AlertSettings

log = logging.getLogger(__name__)

REDACTED = "***"


class Channel(ABC):
    """One place alerts go. ``secrets`` are what must never appear in an error or a log line."""

    name: str

    @abstractmethod
    def send(self, message: Message) -> None:
        """Send one message, in at most the configured timeout; raise if it was not accepted."""

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    @property
    def target(self) -> str:
        """Where it sends, as it may be shown (no secret)."""
        return self.name


@dataclass(frozen=True, kw_only=True)
class Delivery:
    channel: str
    delivered: bool
    attempts: int
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-trivial) secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _retryable(exc: BaseException) -> bool:
    return not (isinstance(exc, AlertDeliveryError) and not exc.retryable)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AlertDeliveryError):
        return exc.detail
    detail = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {detail}" if type(exc).__name__ not in detail else detail


def deliver(channel: Channel, message: Message, settings: AlertSettings) -> Delivery:
    """Send ``message`` through ``channel`` with retries; never raises (an Exception becomes the error)."""
    attempts = 0
    started = time.monotonic()
    retrying = Retrying(
        # each attempt is bounded by the timeout; no retry starts once attempts x timeout have passed
        stop=stop_after_attempt(settings.attempts) | stop_after_delay(settings.timeout_seconds * settings.attempts),
        wait=wait_exponential(multiplier=settings.backoff_seconds, max=max(settings.backoff_seconds * 8, 0.001)),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                channel.send(message)
    except (Exception, RetryError) as exc:
        error = clean_label(redact(_describe(exc), channel.secrets), 1000)
        log.warning(
            "alert %r to %s (%s) not delivered after %d attempt(s): %s",
            message.group,
            channel.name,
            channel.target,
            attempts,
            error,
        )
        return Delivery(
            channel=channel.name, delivered=False, attempts=attempts, seconds=time.monotonic() - started, error=error
        )
    return Delivery(channel=channel.name, delivered=True, attempts=attempts, seconds=time.monotonic() - started)
