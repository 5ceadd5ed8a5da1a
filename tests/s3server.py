"""A real S3-compatible server on 127.0.0.1 for the ``s3://`` tests: moto's standalone server.

Use it from a test module with ``pytest_plugins = ["tests.s3server"]``. ``s3_server`` starts one
``moto_server`` subprocess per session on a free port and waits until it answers; ``s3_bucket``
gives each test a fresh, empty bucket on it. Where the server cannot start (moto not installed,
the process exits, it never answers), the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "driftkeeper-test-key"
SECRET_KEY = "driftkeeper-test-secret-0123456789"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True, kw_only=True)
class S3Server:
    """A running moto server: where it listens and the (made-up) credentials it accepts."""

    endpoint_url: str
    key: str
    secret: str
    region: str

    def storage_options(self) -> dict[str, dict[str, Any]]:
        """fsspec options, keyed by protocol, that point s3fs at this server."""
        return {
            "s3": {
                "endpoint_url": self.endpoint_url,
                "key": self.key,
                "secret": self.secret,
                "client_kwargs": {"region_name": self.region},
            }
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )


@dataclass(frozen=True, kw_only=True)
class S3Bucket:
    """One empty bucket on the server, with a helper to put objects into it."""

    server: S3Server
    name: str

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``key`` (with boto3, not the code under test); its ``s3://`` URI."""
        self.server.client().put_object(Bucket=self.name, Key=key, Body=data)
        return f"s3://{self.name}/{key}"


def _moto_server_command() -> list[str] | None:
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("moto_server")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    command = _moto_server_command()
    if command is None:
        pytest.skip("moto_server not found (install the dev extra: moto[server])")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-500:]
                pytest.skip(f"moto_server did not start on {endpoint} (exit {proc.poll()}): {tail}")
            time.sleep(0.1)
        yield S3Server(endpoint_url=endpoint, key=ACCESS_KEY, secret=SECRET_KEY, region=REGION)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    name = f"dk-{uuid.uuid4().hex[:16]}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(server=s3_server, name=name)
