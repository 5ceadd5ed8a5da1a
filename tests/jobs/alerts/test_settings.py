"""The ``alerts`` section: channels optional, secrets from the environment and never printed."""

from __future__ import annotations

import doctest
import importlib

import pytest
from pydantic import ValidationError

from drift.errors import ConfigError
from jobs.alerts.settings import AlertSettings
from jobs.config import load_settings
from tests.jobs.alerts.outcomes import SECRET


def test_no_channel_by_default():
    assert AlertSettings().channels == ()
    assert AlertSettings().timeout_seconds == 10 and AlertSettings().attempts == 3


def test_secrets_come_from_the_environment_and_never_print(tmp_path, monkeypatch):
    path = tmp_path / "driftkeeper.yaml"
    path.write_text("alerts:\n  webhook:\n    url: https://hooks.example/dk\n  cooldown_minutes: 30\n")
    monkeypatch.setenv("DRIFTKEEPER__ALERTS__WEBHOOK__SECRET", SECRET)
    monkeypatch.setenv("DRIFTKEEPER__ALERTS__SLACK__WEBHOOK_URL", "https://hooks.slack.com/services/T/B/xyz123")
    settings = load_settings(path)
    alerts = settings.alerts
    assert alerts.channels == ("webhook", "slack") and alerts.cooldown_minutes == 30
    assert alerts.webhook is not None and alerts.webhook.secret is not None
    assert alerts.webhook.secret.get_secret_value() == SECRET
    shown = repr(settings) + str(settings.model_dump()) + settings.model_dump_json()
    assert SECRET not in shown and SECRET[6:] not in shown and "xyz123" not in shown


@pytest.mark.parametrize(
    "secret",
    ["0123456789abcdef0123456789abcdef", "whsec_not base64!", "whsec_" + "QUJD"],
    ids=["no-prefix", "not-base64", "too-short"],
)
def test_a_malformed_webhook_secret_is_refused_without_echoing_it(secret: str):
    with pytest.raises(ValidationError) as info:
        AlertSettings(webhook={"url": "https://h.example", "secret": secret})
    assert "secret" in str(info.value) and secret not in str(info.value)


@pytest.mark.parametrize(
    "email, message",
    [
        ({"sender": "a@b.c", "recipients": []}, "at least 1"),
        ({"sender": "a@b.c\r\nBcc: x@y.z", "recipients": ["o@b.c"]}, "control characters"),
        ({"sender": "a@b.c", "recipients": ["o@b.c\nBcc: x@y.z"]}, "not an email address"),
        ({"sender": "a@b.c", "recipients": ["o@b.c"], "username": "u"}, "both username and password"),
        ({"sender": "a@b.c", "recipients": ["o@b.c"], "username": "u", "password": "p", "starttls": False}, "STARTTLS"),
        ({"sender": "a@b.c", "recipients": ["o@b.c"], "ca_file": "/nonexistent/ca.pem"}, "does not exist"),
    ],
    ids=["no-recipient", "crlf-sender", "crlf-recipient", "half-credentials", "password-in-clear", "missing-ca"],
)
def test_email_rules(email: dict[str, object], message: str):
    with pytest.raises(ValidationError, match=message):
        AlertSettings(email={"host": "smtp.example", **email})


def test_an_unknown_key_names_the_key(tmp_path):
    path = tmp_path / "driftkeeper.yaml"
    path.write_text("alerts:\n  webhook:\n    url: https://h.example\n    secrte: x\n")
    with pytest.raises(ConfigError, match=r"alerts\.webhook\.secrte: unknown key"):
        load_settings(path)


@pytest.mark.parametrize("name", ["jobs.alerts.alert", "jobs.alerts.webhook", "jobs.alerts.slack"])
def test_docstring_examples(name: str):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
