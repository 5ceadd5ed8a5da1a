"""The generic webhook against a real HTTP receiver: Alertmanager body, Standard Webhooks signature,
resolved messages, retries, timeouts, hostile names."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest

from jobs.alerts.notify import notify_outcome
from storage import alerts as store
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from tests.jobs.alerts.outcomes import NOW, SECRET, check, run, settings, webhook_settings
from tests.jobs.alerts.receivers import HttpReceiver, Received, closed_port


def verify_standard_webhook(request: Received, secret: str) -> bool:
    """The receiver's side of https://www.standardwebhooks.com, written from the spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in request.headers["webhook-signature"].split(" ") if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in offered)


def test_a_rising_verdict_posts_an_alertmanager_body_signed_per_standard_webhooks(database, receiver: HttpReceiver):
    config = webhook_settings(receiver, database.url, external_url="https://dk.example/reports")
    report = notify_outcome(database.session_factory, config, check(run(drifted=True, reasons=("x drifted",))), now=NOW)
    assert report.delivered and len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hook" and request.headers["content-type"] == "application/json"
    assert verify_standard_webhook(request, SECRET)
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60  # the real time of sending
    body = request.json()
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "driftkeeper"
    assert body["groupLabels"] == {"model": "digits", "week": "2026-W38"}
    assert body["commonLabels"]["alertname"] == "DriftkeeperVerdict"
    assert body["externalURL"] == "https://dk.example/reports" and body["truncatedAlerts"] == 0
    assert body["groupKey"] == '{}:{model="digits",week="2026-W38"}'
    (alert,) = body["alerts"]
    assert alert["labels"] == {
        "alertname": "DriftkeeperVerdict",
        "model": "digits",
        "week": "2026-W38",
        "level": "watch",
        "severity": "warning",
    }
    assert alert["status"] == "firing" and alert["startsAt"] == "2026-09-16T03:00:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and len(alert["fingerprint"]) == 16
    assert "x drifted" in alert["annotations"]["description"]


def test_a_tampered_body_fails_verification(receiver: HttpReceiver, database):
    notify_outcome(
        database.session_factory, webhook_settings(receiver, database.url), check(run(drifted=True)), now=NOW
    )
    request = receiver.requests[0]
    forged = Received(path=request.path, headers=request.headers, body=request.body.replace(b"watch", b"ok"))
    assert verify_standard_webhook(request, SECRET) and not verify_standard_webhook(forged, SECRET)


def test_the_return_to_ok_sends_resolved_with_the_same_fingerprint(database, receiver: HttpReceiver):
    config = webhook_settings(receiver, database.url)
    notify_outcome(database.session_factory, config, check(run(drifted=True, worthy=True)), now=NOW)
    later = NOW + timedelta(hours=2)
    notify_outcome(database.session_factory, config, check(run()), now=later)
    firing, resolved = (r.json() for r in receiver.requests)
    assert resolved["status"] == "resolved"
    (alert,) = resolved["alerts"]
    assert alert["status"] == "resolved" and alert["endsAt"] == "2026-09-16T05:00:00Z"
    assert alert["startsAt"] == firing["alerts"][0]["startsAt"]
    assert alert["fingerprint"] == firing["alerts"][0]["fingerprint"]
    assert alert["labels"]["level"] == "act"  # the labels it fired with
    assert verify_standard_webhook(receiver.requests[1], SECRET)


def test_a_500_is_retried_then_delivered_and_recorded(database, receiver: HttpReceiver):
    receiver.answers = [500, 503]
    report = notify_outcome(
        database.session_factory, webhook_settings(receiver, database.url), check(run(drifted=True)), now=NOW
    )
    assert receiver.statuses() == [500, 503, 200]
    assert report.delivered and report.deliveries[0].attempts == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one message, retried
    assert all(verify_standard_webhook(r, SECRET) for r in receiver.requests)
    with database.session_factory() as session:
        (record,) = store.recent_deliveries(session)
    assert record.delivered and record.attempts == 3 and record.error is None


def test_a_4xx_is_not_retried(database, receiver: HttpReceiver):
    receiver.answers = [400]
    report = notify_outcome(
        database.session_factory, webhook_settings(receiver, database.url), check(run(drifted=True)), now=NOW
    )
    assert receiver.statuses() == [400] and not report.delivered
    assert report.deliveries[0].error == "HTTP 400"


def test_an_unreachable_channel_fails_fast_is_recorded_and_raises_nothing(database):
    port = closed_port()
    config = settings(database.url, webhook={"url": f"http://127.0.0.1:{port}/hook?token=tok-SECRET-1"})
    started = time.monotonic()
    report = notify_outcome(database.session_factory, config, check(run(drifted=True)), now=NOW)
    assert time.monotonic() - started < 2
    assert not report.delivered and report.error is None
    (delivery,) = report.deliveries
    assert delivery.attempts == 3 and "ConnectError" in (delivery.error or "")
    with database.session_factory() as session:
        (record,) = store.recent_deliveries(session, failed_only=True)
    assert not record.delivered and "tok-SECRET-1" not in (record.error or "")


def test_a_server_that_never_answers_costs_at_most_timeout_per_attempt(database, receiver: HttpReceiver, caplog):
    receiver.hang = True
    config = webhook_settings(receiver, database.url, timeout_seconds=0.3, retries=1)
    started = time.monotonic()
    report = notify_outcome(database.session_factory, config, check(run(drifted=True)), now=NOW)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 0.6 + 1.5, elapsed
    assert len(receiver.requests) == 2 and not report.delivered
    assert "Timeout" in (report.deliveries[0].error or "")
    assert SECRET not in caplog.text and SECRET[6:] not in caplog.text
    assert any("not delivered after 2 attempt(s)" in r.getMessage() for r in caplog.records)


def test_an_undelivered_alert_is_tried_again_on_the_next_outcome(database, receiver: HttpReceiver):
    config = webhook_settings(receiver, database.url, retries=0)
    receiver.answers = [500]
    notify_outcome(database.session_factory, config, check(run(drifted=True)), now=NOW)
    again = notify_outcome(database.session_factory, config, check(run(drifted=True)), now=NOW + timedelta(minutes=1))
    assert receiver.statuses() == [500, 200] and again.delivered


@pytest.mark.parametrize(
    "hostile",
    ['qu"ote\\', "new\nline\r\nBcc: evil@example.com", "<script>alert(1)</script>", "\ud800 lone & \x00 nul"],
    ids=["quotes", "crlf", "script", "surrogate-nul"],
)
def test_hostile_names_give_valid_json_and_a_valid_signature(receiver: HttpReceiver, hostile: str, tmp_path):
    config = webhook_settings(receiver)
    engine = make_engine(f"sqlite:///{tmp_path / 'dk.db'}")
    upgrade(engine)
    try:
        outcome = check(run(drifted=True, model=hostile, reasons=(f"column {hostile} drifted",)), model=hostile)
        report = notify_outcome(make_session_factory(engine), config, outcome, now=NOW)
    finally:
        engine.dispose()
    assert report.delivered, report
    request = receiver.requests[0]
    body = json.loads(request.body.decode("utf-8"))  # strict: valid UTF-8, valid JSON
    assert verify_standard_webhook(request, SECRET)
    labels = body["alerts"][0]["labels"]
    assert all("\n" not in v and "\r" not in v and "\x00" not in v for v in labels.values())
    assert "Bcc" not in request.headers and all("\n" not in v for v in request.headers.values())
