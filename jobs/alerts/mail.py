"""Email over SMTP (smtplib) with STARTTLS: a plain-text message per group of alerts.

Header values are one line without control characters (:func:`~jobs.alerts.alert.clean_label`),
so a hostile name cannot add a header (``\\r\\nBcc: ...``). STARTTLS is required when configured:
a server that does not offer it is an error, never a silent downgrade. ``ca_file`` trusts a
private CA instead of the system's.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from drift.errors import AlertDeliveryError
from jobs.alerts.alert import Message, clean_label, clean_text
from jobs.alerts.channel import Channel
from jobs.alerts.settings import AlertSettings, EmailChannel
from storage.clock import Clock, wall_clock


def email_body(message: Message, external_url: str | None) -> str:
    lines = [message.title, ""]
    for alert in message.alerts:
        lines.append(f"{alert.status.upper()}: {alert.summary}")
        description = alert.annotations.get("description")
        if description:
            lines += [f"  {line}" for line in description.splitlines()]
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in alert.labels.items()))
        lines.append(f"  started {alert.starts_at.isoformat()}")
        if alert.ends_at is not None:
            lines.append(f"  resolved {alert.ends_at.isoformat()}")
        lines.append(f"  fingerprint {alert.fingerprint}")
        lines.append("")
    if external_url:
        lines.append(external_url)
    return clean_text("\n".join(lines), 100_000) + "\n"


class Email(Channel):
    name = "email"

    def __init__(self, config: EmailChannel, settings: AlertSettings, *, clock: Clock = wall_clock) -> None:
        self._config = config
        self._settings = settings
        self._clock = clock  # the Date header is the real time of sending

    @property
    def secrets(self) -> tuple[str, ...]:
        password = self._config.password
        return () if password is None else (password.get_secret_value(),)

    @property
    def target(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = clean_label(message.title, 250)
        mail["From"] = self._config.sender
        mail["To"] = ", ".join(self._config.recipients)
        mail["Date"] = format_datetime(self._clock())
        mail["Message-ID"] = make_msgid(domain="driftkeeper")
        mail["X-Driftkeeper-Group"] = clean_label(message.group)
        mail["X-Driftkeeper-Status"] = str(message.status)
        mail.set_content(email_body(message, self._settings.external_url))
        return mail

    def _tls(self) -> ssl.SSLContext:
        ca_file = self._config.ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)

    def send(self, message: Message) -> None:
        mail = self.compose(message)
        config = self._config
        try:
            with smtplib.SMTP(config.host, config.port, timeout=self._settings.timeout_seconds) as smtp:
                smtp.ehlo()
                if config.starttls:
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                if config.username is not None and config.password is not None:
                    smtp.login(config.username, config.password.get_secret_value())
                refused = smtp.send_message(mail, from_addr=config.sender, to_addrs=list(config.recipients))
        except smtplib.SMTPNotSupportedError as exc:
            raise AlertDeliveryError(self.name, f"{self.target} offers no STARTTLS", retryable=False) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise AlertDeliveryError(self.name, f"login refused ({exc.smtp_code})", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            retryable = exc.smtp_code < 500
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            detail = f"SMTP {exc.smtp_code} {clean_label(text, 200)}"
            raise AlertDeliveryError(self.name, detail, retryable=retryable) from exc
        except ssl.SSLCertVerificationError as exc:
            raise AlertDeliveryError(self.name, f"TLS: {exc.verify_message}", retryable=False) from exc
        except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, TLS, disconnected
            raise AlertDeliveryError(self.name, f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise AlertDeliveryError(self.name, f"refused recipients: {', '.join(sorted(refused))}", retryable=False)
