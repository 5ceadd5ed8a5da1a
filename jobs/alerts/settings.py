"""The ``alerts`` section of the settings (see the README, "Alerts and metrics").

Each channel is optional: a missing section (None) means that channel is off, and with no
channel at all nothing is derived, stored or sent. Secrets are :class:`~pydantic.SecretStr`, so
they may come from the environment (``DRIFTKEEPER__ALERTS__WEBHOOK__SECRET=whsec_...``) and
never print.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

WEBHOOK_SECRET_PREFIX = "whsec_"
CHANNELS = ("webhook", "slack", "email")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # inputs may be secrets


def _http_url(value: str, what: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value) or _CONTROL.search(value):
        raise ValueError(f"{what} must be an http:// or https:// URL")
    return value


class WebhookChannel(_Strict):
    """A generic webhook: Alertmanager's webhook JSON, signed per the Standard Webhooks scheme."""

    url: str = Field(description="where the JSON is POSTed")
    secret: SecretStr | None = Field(
        None, description="whsec_<base64 of 24-64 random bytes>; without it, requests are not signed"
    )
    receiver: str = Field("driftkeeper", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "url")

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_key(value)  # raises ValueError without echoing the secret
        return value


def secret_key(secret: SecretStr) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret: the base64-decoded part after the prefix."""
    text = secret.get_secret_value()
    if not text.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"secret must look like {WEBHOOK_SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(text[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"secret: the part after {WEBHOOK_SECRET_PREFIX} is not valid base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(f"secret: the key must be 24 to 64 bytes, not {len(key)}")
    return key


class SlackChannel(_Strict):
    """A Slack incoming webhook; the URL itself is the secret."""

    webhook_url: SecretStr

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^https?://[^\s/]+", value.get_secret_value()):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return value


class EmailChannel(_Strict):
    """Email over SMTP; STARTTLS by default (never silently downgraded to plain text)."""

    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    recipients: tuple[str, ...] = Field(min_length=1)
    ca_file: Path | None = Field(None, description="a PEM bundle to trust instead of the system CAs (a private CA)")

    @field_validator("sender", "username")
    @classmethod
    def _no_control(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not contain control characters (CR, LF, ...)")
        return value

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be an email address")
        return value

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if "@" not in v or _CONTROL.search(v) or "," in v]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.password is not None and not self.starttls:
            raise ValueError("a password is only sent over STARTTLS: set starttls: true")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist")
        return self


class AlertSettings(_Strict):
    """Where alerts go and how hard delivery tries (see :mod:`jobs.alerts.notify`)."""

    cooldown_minutes: float = Field(
        360, ge=0, description="the same alert (fingerprint and level) is sent again only after this long"
    )
    timeout_seconds: float = Field(10, gt=0, le=300, description="the most one delivery attempt may take")
    retries: int = Field(2, ge=0, le=10, description="attempts after the first, per channel and message")
    backoff_seconds: float = Field(1, ge=0, le=60, description="the first wait between attempts; doubles each time")
    external_url: str | None = Field(None, description="where driftkeeper's reports are served (externalURL)")
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    email: EmailChannel | None = None

    @field_validator("external_url")
    @classmethod
    def _external(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "external_url")

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels, in a fixed order."""
        return tuple(name for name in CHANNELS if getattr(self, name) is not None)

    @property
    def attempts(self) -> int:
        return self.retries + 1
