"""Real servers on 127.0.0.1 that alerts are sent to: an HTTP receiver and an SMTP server with STARTTLS."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; answers the statuses in ``answers`` first (then 200); ``hang`` never answers."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def statuses(self) -> list[int]:
        return [int(r.headers.get("x-answered", 0)) for r in self.requests]


def _handler(receiver_ref: list[HttpReceiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            receiver = receiver_ref[0]
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = 0 if receiver.hang else receiver.answers.pop(0) if receiver.answers else 200
            headers = {k.lower(): v for k, v in self.headers.items()} | {"x-answered": str(status)}
            receiver.requests.append(Received(path=self.path, headers=headers, body=body))
            if receiver.hang:
                receiver.release.wait(30)
                return
            reply = b"ok" if status == 200 else b"server error"
            self.send_response(status)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    ref: list[HttpReceiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    receiver = HttpReceiver(server=server)
    ref.append(receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpHandler:
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    secured: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.messages.append((envelope, message_from_bytes(data, policy=policy.default)))  # type: ignore[arg-type]
        self.secured.append(session.ssl is not None)
        return "250 OK"


@dataclass(frozen=True)
class SmtpReceiver:
    host: str
    port: int
    ca_file: Path
    handler: SmtpHandler
    logins: list[tuple[str, str]]


class _Authenticator:
    def __init__(self, logins: list[tuple[str, str]], password: str) -> None:
        self.logins = logins
        self.password = password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((login, password))
            return AuthResult(success=password == self.password, handled=False)
        return AuthResult(success=False, handled=False)


@contextmanager
def smtp_receiver(tmp_path: Path, *, password: str = "s3cret-smtp-pass") -> Iterator[SmtpReceiver]:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS, with a certificate from a private CA (trustme)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = SmtpHandler()
    logins: list[tuple[str, str]] = []
    port = closed_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_Authenticator(logins, password),
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpReceiver(host="127.0.0.1", port=port, ca_file=ca_file, handler=handler, logins=logins)
    finally:
        controller.stop()


def wait_for(predicate: Any, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
