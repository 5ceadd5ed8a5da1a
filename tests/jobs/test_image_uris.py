"""Images and masks read through fsspec from local paths, file://, s3:// (a real moto server) and
http:// (a real ``http.server``), only from inside the configured roots."""

from __future__ import annotations

import base64
import doctest
import functools
import http.server
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

import jobs.images
from jobs.images import allowed_uri, iter_uri_bytes, read_mask, read_uri_bytes, thumbnail_data_uri, within_roots

if TYPE_CHECKING:
    from tests.s3server import S3Bucket

pytest_plugins = ["tests.s3server"]


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


GRAY = _png_bytes(np.full((32, 32), 200, dtype=np.uint8))


def _write(path: Path, data: bytes = GRAY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- local paths and file:// ------------------------------------------------------------------


def test_local_paths_and_file_uris_inside_the_roots_are_read(tmp_path):
    root = tmp_path / "images"
    inside = _write(root / "day1" / "a.png")
    outside = _write(tmp_path / "secret" / "b.png")
    for uri in (str(inside), f"file://{inside}", f"file://localhost{inside}"):
        assert allowed_uri(uri, [root]) == str(inside.resolve())
        assert read_uri_bytes(uri, [root]) == (GRAY, "")
        assert read_uri_bytes(uri, [str(root)]) == (GRAY, "")
        assert read_uri_bytes(uri, [f"file://{root}"]) == (GRAY, "")
    for uri in (str(outside), f"file://{outside}", str(root / ".." / "secret" / "b.png")):
        assert allowed_uri(uri, [root]) is None
        assert read_uri_bytes(uri, [root]) == (None, "outside image_roots")
    assert read_uri_bytes(str(inside), []) == (None, "outside image_roots")
    assert read_uri_bytes(None, [root]) == (None, "outside image_roots")
    assert read_uri_bytes("", [root]) == (None, "outside image_roots")
    assert read_uri_bytes(str(root / "day1" / "gone.png"), [root]) == (None, "missing")
    assert read_uri_bytes(str(root / "day1"), [root]) == (None, "unreadable: IsADirectoryError")


def test_symlinks_out_of_the_root_are_refused(tmp_path):
    root = tmp_path / "images"
    outside = _write(tmp_path / "secret" / "b.png")
    root.mkdir()
    os.symlink(outside, root / "link.png")
    os.symlink(tmp_path / "secret", root / "linkdir")
    os.symlink(tmp_path / "secret" / "not-yet.png", root / "dangling.png")
    for name in ("link.png", "linkdir/b.png", "dangling.png"):
        assert allowed_uri(str(root / name), [root]) is None
        assert read_uri_bytes(f"file://{root / name}", [root]) == (None, "outside image_roots")
    os.symlink(_write(root / "real.png"), root / "alias.png")  # a link that stays inside is fine
    assert read_uri_bytes(str(root / "alias.png"), [root]) == (GRAY, "")


def test_local_roots_match_at_a_folder_boundary(tmp_path):
    _write(tmp_path / "img2" / "x.png")
    assert allowed_uri(str(tmp_path / "img2" / "x.png"), [tmp_path / "img"]) is None
    assert within_roots(str(tmp_path / "img2" / "x.png"), [tmp_path / "img"]) is None
    assert within_roots(str(tmp_path / "img2" / "x.png"), [tmp_path / "img2"]) == tmp_path / "img2" / "x.png"


# --- remote prefixes: allow/refuse logic (no request is made) ----------------------------------

ROOTS = ["s3://bucket/img", "gs://masks-bucket/seg/", "https://cdn.example.com/photos/", "http://10.0.0.5:8080/"]


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/img/a.png",
        "s3://bucket/img/day/1/a b.png",
        "S3://bucket/img/a.png",
        "s3a://bucket/img/a.png",
        "gs://masks-bucket/seg/m.png",
        "gcs://masks-bucket/seg/m.png",
        "https://cdn.example.com/photos/a.png",
        "https://CDN.example.com/photos/a.png",
        "http://10.0.0.5:8080/any/a.png",
    ],
)
def test_uris_under_a_root_prefix_are_allowed(uri):
    allowed = allowed_uri(uri, ROOTS)
    assert allowed is not None and allowed.endswith(uri.split("/", 3)[3])


def test_allowed_uris_are_normalised_to_the_canonical_scheme():
    assert allowed_uri("s3a://bucket/img/a.png", ROOTS) == "s3://bucket/img/a.png"
    assert allowed_uri("gcs://masks-bucket/seg/m.png", ROOTS) == "gs://masks-bucket/seg/m.png"
    assert allowed_uri("https://CDN.example.com/photos/a.png", ROOTS) == "https://cdn.example.com/photos/a.png"


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("s3://bucket/img2/x.png", id="prefix-not-at-boundary"),
        pytest.param("s3://bucket/imgx", id="prefix-not-at-boundary-no-slash"),
        pytest.param("s3://bucket/img", id="the-prefix-itself"),
        pytest.param("s3://bucket/img/", id="the-prefix-itself-with-slash"),
        pytest.param("s3://other/img/a.png", id="other-bucket"),
        pytest.param("s3://bucket/other/a.png", id="other-prefix"),
        pytest.param("gs://bucket/img/a.png", id="other-scheme-same-path"),
        pytest.param("s3://bucket/img/../secret/a.png", id="dotdot"),
        pytest.param("s3://bucket/img/./a.png", id="dot"),
        pytest.param("s3://bucket/img/..", id="trailing-dotdot"),
        pytest.param("s3://bucket/img/%2e%2e/secret/a.png", id="encoded-dotdot"),
        pytest.param("s3://bucket/img/%2E%2e%2fsecret", id="encoded-slash"),
        pytest.param("s3://bucket/img/a.png?versionId=1", id="query"),
        pytest.param("s3://bucket/img/a.png#x", id="fragment"),
        pytest.param("s3://bucket/other.png#/img/a.png", id="fragment-looking-inside"),
        pytest.param("s3://bucket/img\\..\\secret", id="backslash"),
        pytest.param("s3://bucket/img/a\n.png", id="newline"),
        pytest.param("gs://masks-bucket/segx/m.png", id="gs-boundary"),
        pytest.param("gs://masks-bucket/seg/../../etc", id="gs-dotdot"),
        pytest.param("https://cdn.example.com/photos/../admin", id="https-dotdot"),
        pytest.param("https://cdn.example.com/photos/%2E%2E/admin", id="https-encoded-dotdot"),
        pytest.param("https://cdn.example.com/photos/a.png?redirect=//evil", id="https-query"),
        pytest.param("https://cdn.example.com@evil.com/photos/a.png", id="https-userinfo"),
        pytest.param("https://cdn.example.com.evil.com/photos/a.png", id="https-host-suffix"),
        pytest.param("http://cdn.example.com/photos/a.png", id="http-for-an-https-root"),
        pytest.param("http://10.0.0.5:8081/a.png", id="other-port"),
        pytest.param("ftp://cdn.example.com/photos/a.png", id="unknown-scheme"),
        pytest.param("s3:/bucket/img/a.png", id="one-slash-is-a-local-path"),
    ],
)
def test_uris_outside_the_prefixes_are_refused(uri):
    assert allowed_uri(uri, ROOTS) is None
    assert read_uri_bytes(uri, ROOTS) == (None, "outside image_roots")


def test_remote_roots_never_allow_local_paths_and_local_roots_never_allow_remote(tmp_path):
    _write(tmp_path / "a.png")
    assert allowed_uri(str(tmp_path / "a.png"), ["s3://bucket/"]) is None
    assert allowed_uri("s3://bucket/a.png", [tmp_path]) is None
    assert within_roots("s3://bucket/img/a.png", ROOTS) is None
    assert allowed_uri("s3://bucket/a.png", ["s3://bucket/../"]) is None  # a malformed root allows nothing
    assert allowed_uri("s3://bucket/a.png", ["s3://bucket"]) == "s3://bucket/a.png"  # a whole bucket
    assert allowed_uri("s3://bucket/", ["s3://bucket"]) is None  # the bucket itself is no object


# --- s3:// on a real moto server -----------------------------------------------------------------


def test_s3_objects_are_read_from_the_server(s3_bucket: S3Bucket):
    uri = s3_bucket.put("photos/day1/a.png", GRAY)
    s3_bucket.put("photos2/b.png", GRAY)
    roots = [f"s3://{s3_bucket.name}/photos/"]
    options = s3_bucket.server.storage_options()
    assert read_uri_bytes(uri, roots, options) == (GRAY, "")
    assert read_uri_bytes(f"s3://{s3_bucket.name}/photos/day1/gone.png", roots, options) == (None, "missing")
    assert read_uri_bytes(f"s3://{s3_bucket.name}/photos2/b.png", roots, options) == (None, "outside image_roots")
    assert read_uri_bytes("s3://no-such-bucket-dk/photos/a.png", ["s3://no-such-bucket-dk/"], options) == (
        None,
        "missing",
    )


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[int]]]:
    """A TCP endpoint that counts the connections made to it (and answers none)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_an_s3_uri_outside_the_prefix_is_refused_without_any_request(s3_bucket: S3Bucket, counting_server):
    endpoint, accepted = counting_server
    s3_bucket.put("private/payroll.png", GRAY)  # really there, readable with these credentials
    options = {"s3": {**s3_bucket.server.storage_options()["s3"], "endpoint_url": endpoint}}
    roots = [f"s3://{s3_bucket.name}/photos"]
    for uri in (f"s3://{s3_bucket.name}/private/payroll.png", f"s3://{s3_bucket.name}/photos/../private/payroll.png"):
        assert read_uri_bytes(uri, roots, options) == (None, "outside image_roots")
        assert [r for _, _, r in iter_uri_bytes([uri], roots, options)] == ["outside image_roots"]
    assert accepted == []
    real = s3_bucket.server.storage_options()
    assert read_uri_bytes(f"s3://{s3_bucket.name}/private/payroll.png", [f"s3://{s3_bucket.name}/"], real)[0] == GRAY


def test_iter_uri_bytes_reads_a_batch_in_input_order(s3_bucket: S3Bucket, tmp_path):
    blobs = [_png_bytes(np.full((8, 8), v, dtype=np.uint8)) for v in range(40)]
    uris: list[str | None] = [s3_bucket.put(f"photos/{i:03d}.png", b) for i, b in enumerate(blobs)]
    local = _write(tmp_path / "local.png")
    uris += [f"s3://{s3_bucket.name}/photos/missing.png", f"s3://{s3_bucket.name}/elsewhere.png", None, str(local)]
    roots = [f"s3://{s3_bucket.name}/photos", tmp_path]
    got = list(iter_uri_bytes(uris, roots, s3_bucket.server.storage_options(), max_workers=4))
    assert [i for i, _, _ in got] == list(range(len(uris)))
    assert [data for _, data, _ in got[:40]] == blobs
    assert [(data, reason) for _, data, reason in got[40:]] == [
        (None, "missing"),
        (None, "outside image_roots"),
        (None, "outside image_roots"),
        (GRAY, ""),
    ]
    assert list(iter_uri_bytes([], roots)) == []
    with pytest.raises(ValueError, match="max_workers must be at least 1"):
        list(iter_uri_bytes(uris, roots, max_workers=0))


def test_thumbnails_and_masks_come_from_s3(s3_bucket: S3Bucket):
    options = s3_bucket.server.storage_options()
    roots = [f"s3://{s3_bucket.name}/data/"]
    photo = s3_bucket.put("data/photo.png", GRAY)
    thumb = thumbnail_data_uri(photo, roots, size=16, storage_options=options)
    assert thumb is not None and thumb.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1]))) as img:
        assert img.size == (16, 16) and np.asarray(img.convert("L")).max() == 200
    assert thumbnail_data_uri(s3_bucket.put("data/notes.txt", b"not an image"), roots, storage_options=options) is None

    classes = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    mask_uri = s3_bucket.put("data/mask.png", _png_bytes(classes))
    mask, reason = read_mask(mask_uri, roots, 3, storage_options=options)
    assert reason == "" and mask is not None and mask.dtype == np.int64 and mask.tolist() == classes.tolist()
    assert read_mask(mask_uri, roots, 2, storage_options=options) == (None, "holds class indices outside 0..1")
    missing = f"s3://{s3_bucket.name}/data/none.png"
    assert read_mask(missing, roots, 3, storage_options=options) == (None, "missing or outside image_roots")
    assert read_mask(f"s3://{s3_bucket.name}/other/mask.png", roots, 3, storage_options=options) == (
        None,
        "missing or outside image_roots",
    )
    rgb = s3_bucket.put("data/rgb.png", _png_bytes(np.zeros((4, 4, 3), dtype=np.uint8)))
    assert read_mask(rgb, roots, 3, storage_options=options) == (None, "not a single-channel class-index image")


def test_secrets_in_storage_options_never_reach_the_reasons(s3_bucket: S3Bucket):
    secret = "sEcReT-do-not-log-4242"
    good = {"s3": {**s3_bucket.server.storage_options()["s3"], "secret": secret, "key": secret}}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    no_retries = {"retries": {"max_attempts": 1}}  # botocore's default retries take ~9 s on a dead port
    dead = {"s3": {**good["s3"], "endpoint_url": f"http://127.0.0.1:{dead_port}", "config_kwargs": no_retries}}
    bogus = {"s3": {**good["s3"], "no_such_option": secret}}
    roots = [f"s3://{s3_bucket.name}/p/"]
    uri = s3_bucket.put("p/a.png", GRAY)
    cases = [
        read_uri_bytes(uri, roots, good),
        read_uri_bytes(f"s3://{s3_bucket.name}/p/none.png", roots, good),
        read_uri_bytes(f"s3://{s3_bucket.name}/q/a.png?{secret}", roots, good),
        read_uri_bytes(uri, roots, dead),
        read_uri_bytes(uri, roots, bogus),
    ]
    assert [(data is not None, reason) for data, reason in cases] == [
        (True, ""),
        (False, "missing"),
        (False, "outside image_roots"),
        (False, "unreadable: EndpointConnectionError"),
        (False, "unreadable: TypeError"),
    ]
    assert all(secret not in reason for _, reason in cases)


# --- http:// from a local http.server ------------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temporary folder: (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/photos/jump.png":  # an allowed URI that redirects out of the prefix
                self.send_response(302)
                self.send_header("Location", "/private/b.png")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_http_images_are_read_from_inside_the_prefix_only(http_folder):
    base, folder = http_folder
    _write(folder / "photos" / "a.png")
    _write(folder / "private" / "b.png")
    roots = [f"{base}/photos/"]
    assert read_uri_bytes(f"{base}/photos/a.png", roots) == (GRAY, "")
    assert read_uri_bytes(f"{base}/photos/none.png", roots) == (None, "missing")
    assert read_uri_bytes(f"{base}/private/b.png", roots) == (None, "outside image_roots")
    assert read_uri_bytes(f"{base}/photos/../private/b.png", roots) == (None, "outside image_roots")
    assert read_uri_bytes(f"{base}/photos/%2e%2e/private/b.png", roots) == (None, "outside image_roots")
    assert read_uri_bytes(f"{base}/photos/a.png?x=1", roots) == (None, "outside image_roots")
    assert read_uri_bytes(f"{base}/photos/jump.png", roots) == (None, "unreadable: TooManyRedirects")
    assert read_uri_bytes(f"{base}/private/b.png", [f"{base}/"]) == (GRAY, "")  # jump.png's target is real
    got = {i: (data, reason) for i, data, reason in iter_uri_bytes([f"{base}/photos/a.png", f"{base}/b.png"], roots)}
    assert got == {0: (GRAY, ""), 1: (None, "outside image_roots")}
    thumb = thumbnail_data_uri(f"{base}/photos/a.png", roots, size=8)
    assert thumb is not None and thumb.startswith("data:image/png;base64,")


def test_the_docstring_examples_run():
    result = doctest.testmod(jobs.images)
    assert result.attempted > 0 and result.failed == 0
