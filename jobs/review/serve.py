"""Run the review app (:func:`jobs.review.app.create_app`) under uvicorn.

Bound to 127.0.0.1 by default; any other address needs a token (``review.token``), checked
here before a socket is opened.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ConfigError
from jobs.config import Settings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    >>> is_loopback("127.0.0.2"), is_loopback("192.168.1.5"), is_loopback("example.org")
    (True, False, False)
    """
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token (:class:`ConfigError`)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"review: refusing to listen on {host} without a token; set review.token "
            "(or DRIFTKEEPER__REVIEW__TOKEN) or bind to 127.0.0.1"
        )


def serve_review(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    model: str | None,
    host: str,
    port: int,
    token: str | None,
) -> None:
    """Serve the review pages on ``host:port`` until interrupted."""
    check_binding(host, token)
    import uvicorn

    from jobs.review.app import create_app

    app = create_app(session_factory, settings, model=model, token=token or None)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, proxy_headers=False)
