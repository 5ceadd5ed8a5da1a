"""Slack (slack_sdk's WebhookClient, pointed at the HTTP receiver) and email (smtplib against aiosmtpd
requiring STARTTLS, trusted through ``ca_file``)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from jobs.alerts.notify import notify_outcome
from tests.jobs.alerts.outcomes import NOW, check, failed_job, run, settings
from tests.jobs.alerts.receivers import HttpReceiver, SmtpReceiver, closed_port

SLACK_PATH = "/services/T000/B000/sl4ck-t0ken"
HOSTILE = "<script>x</script> & <!channel>\r\nBcc: evil@example.com"


def slack_settings(receiver: HttpReceiver, url: str = "sqlite://", **alerts: object):
    return settings(url, slack={"webhook_url": f"{receiver.url}{SLACK_PATH}"}, **alerts)


def email_settings(smtp: SmtpReceiver, url: str = "sqlite://", **email: object):
    config = {
        "host": smtp.host,
        "port": smtp.port,
        "sender": "driftkeeper@example.com",
        "recipients": ["ops@example.com", "ml@example.com"],
        "ca_file": str(smtp.ca_file),
        **email,
    }
    return settings(url, email=config)


def test_slack_gets_blocks_and_a_text_fallback(database, receiver: HttpReceiver):
    report = notify_outcome(
        database.session_factory, slack_settings(receiver, database.url), check(run(drifted=True)), now=NOW
    )
    assert report.delivered
    (request,) = receiver.requests
    assert request.path == SLACK_PATH
    body = request.json()
    assert body["text"].startswith("[FIRING] driftkeeper digits/2026-W38")
    header, section = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert section["text"]["type"] == "mrkdwn" and "digits 2026-W38: watch" in section["text"]["text"]


def test_slack_escapes_hostile_names(database, receiver: HttpReceiver):
    outcome = check(run(drifted=True, reasons=(f"column {HOSTILE} drifted",)))
    notify_outcome(database.session_factory, slack_settings(receiver, database.url), outcome, now=NOW)
    section = receiver.requests[0].json()["blocks"][1]["text"]["text"]
    assert "&lt;script&gt;x&lt;/script&gt; &amp; &lt;!channel&gt;" in section
    assert "<script>" not in section and "<!channel>" not in section


def test_slack_retries_a_500_and_never_shows_its_url(database, receiver: HttpReceiver, caplog):
    receiver.answers = [500, 500, 500]
    report = notify_outcome(
        database.session_factory, slack_settings(receiver, database.url), check(run(drifted=True)), now=NOW
    )
    assert receiver.statuses() == [500, 500, 500] and not report.delivered
    assert report.deliveries[0].attempts == 3 and "HTTP 500" in (report.deliveries[0].error or "")
    assert "sl4ck-t0ken" not in caplog.text and "sl4ck-t0ken" not in str(report.to_dict())


def test_email_over_starttls_with_a_private_ca(database, smtp: SmtpReceiver):
    report = notify_outcome(
        database.session_factory, email_settings(smtp, database.url), check(run(drifted=True)), now=NOW
    )
    assert report.delivered, report
    ((envelope, mail),) = smtp.handler.messages
    assert smtp.handler.secured == [True]
    assert envelope.mail_from == "driftkeeper@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "ml@example.com"]
    assert mail["Subject"].startswith("[FIRING] driftkeeper digits/2026-W38")
    assert mail["X-Driftkeeper-Status"] == "firing" and mail.get_content_type() == "text/plain"
    assert "digits 2026-W38: watch" in mail.get_content()


def test_email_sends_resolved(database, smtp: SmtpReceiver):
    config = email_settings(smtp, database.url)
    notify_outcome(database.session_factory, config, check(run(drifted=True)), now=NOW)
    notify_outcome(database.session_factory, config, check(run()), now=NOW + timedelta(hours=1))
    subjects = [m["Subject"] for _, m in smtp.handler.messages]
    assert subjects[0].startswith("[FIRING]") and subjects[1].startswith("[RESOLVED]")
    assert "resolved 2026-09-16T04:00:00+00:00" in smtp.handler.messages[1][1].get_content()


def test_email_logs_in_over_tls_and_never_shows_the_password(smtp: SmtpReceiver, caplog):
    config = email_settings(smtp, username="dk", password="s3cret-smtp-pass")
    from jobs.alerts.notify import send_test

    (delivery,) = send_test(config, now=NOW)
    assert delivery.delivered and smtp.logins == [("dk", "s3cret-smtp-pass")]
    wrong = email_settings(smtp, username="dk", password="wrong-pass-123")
    (failed,) = send_test(wrong, now=NOW)
    assert not failed.delivered and failed.attempts == 1 and "login refused" in (failed.error or "")
    assert "wrong-pass-123" not in caplog.text and "wrong-pass-123" not in (failed.error or "")


def test_an_untrusted_certificate_is_refused(smtp: SmtpReceiver):
    from jobs.alerts.notify import send_test

    config = settings(
        email={"host": smtp.host, "port": smtp.port, "sender": "a@example.com", "recipients": ["b@example.com"]}
    )
    (delivery,) = send_test(config, now=NOW)
    assert not delivery.delivered and "TLS" in (delivery.error or "") and delivery.attempts == 1


def test_no_header_injection_in_email(database, smtp: SmtpReceiver):
    outcome = failed_job("check", HOSTILE, error=f"boom\r\nBcc: evil@example.com\r\n\r\nforged body {HOSTILE}")
    report = notify_outcome(database.session_factory, email_settings(smtp, database.url), outcome, now=NOW)
    assert report.delivered, report
    ((envelope, mail),) = smtp.handler.messages
    assert mail["Bcc"] is None and "evil@example.com" not in envelope.rcpt_tos
    assert set(mail.keys()) == {
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "X-Driftkeeper-Group",
        "X-Driftkeeper-Status",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    }
    assert "\n" not in mail["Subject"] and "<script>" in mail["Subject"]  # kept as text, on one line
    assert "Bcc: evil@example.com" in mail.get_content()  # in the body, as text


@pytest.mark.parametrize("channel", ["slack", "email"])
def test_an_unreachable_channel_fails_within_its_timeout(channel: str):
    from jobs.alerts.notify import send_test

    port = closed_port()
    if channel == "slack":
        config = settings(slack={"webhook_url": f"http://127.0.0.1:{port}/services/x"})
    else:
        config = settings(email={"host": "127.0.0.1", "port": port, "sender": "a@e.com", "recipients": ["b@e.com"]})
    started = time.monotonic()
    (delivery,) = send_test(config, now=NOW)
    assert time.monotonic() - started < 2
    assert not delivery.delivered and delivery.attempts == 3 and "refused" in (delivery.error or "").lower()
