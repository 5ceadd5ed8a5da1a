"""Input images and masks, read only from a model's configured image roots.

A logged ``input_uri`` is data from production. It is used only when it lies inside one of
``image_roots``; anything else is refused before any file is opened or any request is sent,
so a hostile log row cannot make driftkeeper read, embed or train on an arbitrary object.

A root is a local folder (a ``Path``, a plain path or ``file://...``) or a URI prefix
(``s3://bucket/photos/``, ``gs://bucket/masks``, ``https://host/images/``):

- local paths are resolved, symlinks included, and must stay inside a resolved local root;
- remote URIs must use the root's scheme and host/bucket, hold no query string, fragment,
  userinfo, backslash, control character or ``.``/``..`` segment (percent-encoded or not),
  and their path must continue the root's after a ``/`` boundary
  (``s3://b/img`` allows ``s3://b/img/x.png``, never ``s3://b/img2/x.png``).

Allowed URIs are read through fsspec; ``storage_options`` maps a protocol (``"s3"``, ``"gs"``,
``"https"``, ...; ``s3a``/``gcs`` URIs use the ``"s3"``/``"gs"`` entry) to the keyword arguments
of its filesystem. HTTP redirects are not followed (they could leave the prefix). Reads never
raise: failures become short reasons that name the exception type only, never options or
credentials.
"""

from __future__ import annotations

import base64
import io
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "http", "https"})
_CANONICAL = {"s3a": "s3", "gcs": "gs"}
OUTSIDE = "outside image_roots"
MISSING = "missing"
StorageOptions = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class _Remote:
    """A remote URI split into the parts that are compared: scheme, host or bucket, path."""

    scheme: str
    netloc: str
    path: str  # "" or "/..."; a root's has no trailing slash

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"

    def within(self, root: _Remote) -> bool:
        """Strictly below ``root``: the root is a folder, never an object of its own."""
        if (self.scheme, self.netloc) != (root.scheme, root.netloc):
            return False
        return self.path.startswith(root.path + "/") and len(self.path) > len(root.path) + 1


@dataclass(frozen=True, kw_only=True)
class _Roots:
    local: tuple[Path, ...]
    remote: tuple[_Remote, ...]


def _scheme(uri: str) -> str | None:
    head, sep, _ = uri.partition("://")
    return head.lower() if sep else None


def _remote(uri: str, *, root: bool = False) -> _Remote | None:
    """``uri`` split and checked, or None when it holds anything that could change its meaning."""
    if "?" in uri or "#" in uri or "\\" in uri or any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return None
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES or not parts.netloc or "@" in parts.netloc:
        return None
    decoded = unquote(parts.path)
    if "\\" in decoded or "%2f" in parts.path.lower() or any(ord(c) < 0x20 for c in decoded):
        return None
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return None
    netloc = parts.netloc.lower() if scheme in ("http", "https") else parts.netloc
    path = parts.path.rstrip("/") if root else parts.path
    return _Remote(scheme=_CANONICAL.get(scheme, scheme), netloc=netloc, path=path)


def _local(uri: str) -> Path | None:
    """The local path a plain path or ``file://`` URI names (not resolved), or None."""
    scheme = _scheme(uri)
    if scheme is None:
        return Path(uri)
    if scheme != "file":
        return None
    rest = uri[len("file://") :]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    return Path(rest) if rest.startswith("/") else None


def _parse_roots(roots: Sequence[str | Path]) -> _Roots:
    local: list[Path] = []
    remote: list[_Remote] = []
    for root in roots:
        text = str(root)
        if isinstance(root, Path) or _scheme(text) in (None, "file"):
            path = _local(text)
            if path is not None and text:
                local.append(path.resolve())
        elif (parsed := _remote(text, root=True)) is not None:
            remote.append(parsed)
    return _Roots(local=tuple(local), remote=tuple(remote))


def _allowed(uri: str | None, roots: _Roots) -> str | None:
    if not uri:
        return None
    if _scheme(uri) in REMOTE_SCHEMES:
        parsed = _remote(uri)
        if parsed is not None and any(parsed.within(root) for root in roots.remote):
            return parsed.uri
        return None
    path = _local(uri)
    if path is None or not roots.local:
        return None
    try:
        resolved = path.resolve()  # follows every symlink that exists, so a link out lands outside
    except (OSError, RuntimeError):
        return None
    if any(resolved.is_relative_to(root) for root in roots.local):
        return str(resolved)
    return None


def allowed_uri(uri: str | None, roots: Sequence[str | Path]) -> str | None:
    """The normalised URI (or absolute local path) to open, if ``uri`` lies inside one of
    ``roots``; else None. Nothing is opened or requested.

    >>> allowed_uri("s3://photos/cats/a.png", ["s3://photos/cats/"])
    's3://photos/cats/a.png'
    >>> allowed_uri("s3://photos/cats2/a.png", ["s3://photos/cats"]) is None
    True
    >>> allowed_uri("s3://photos/cats/../dogs/a.png", ["s3://photos/cats"]) is None
    True
    """
    return _allowed(uri, _parse_roots(roots))


def within_roots(uri: str | None, roots: Sequence[str | Path]) -> Path | None:
    """The existing local file ``uri`` names, if it lies inside one of ``roots`` (remote URIs: None)."""
    target = allowed_uri(uri, roots)
    if target is None or _scheme(target) is not None:
        return None
    path = Path(target)
    return path if path.is_file() else None


def _read(target: str, storage_options: StorageOptions | None) -> tuple[bytes | None, str]:
    import fsspec

    protocol = _scheme(target) or "file"
    options = dict((storage_options or {}).get(protocol, {}))
    try:
        # a redirect could leave the allowed prefix: aiohttp raises TooManyRedirects on the first one
        extra = {"max_redirects": 1} if protocol in ("http", "https") else {}
        data = fsspec.filesystem(protocol, **options).cat_file(target, **extra)
    except FileNotFoundError:
        return None, MISSING
    except Exception as exc:  # never fatal: a bad row, a bad option or a dead server is a reason
        return None, f"unreadable: {type(exc).__name__}"
    return bytes(data), ""


def _read_allowed(uri: str | None, roots: _Roots, storage_options: StorageOptions | None) -> tuple[bytes | None, str]:
    target = _allowed(uri, roots)
    if target is None:
        return None, OUTSIDE
    return _read(target, storage_options)


def read_uri_bytes(
    uri: str | None, roots: Sequence[str | Path], storage_options: StorageOptions | None = None
) -> tuple[bytes | None, str]:
    """The bytes ``uri`` holds and ``""``; or None and why not: ``"outside image_roots"`` (nothing
    was opened), ``"missing"``, or ``"unreadable: <ExceptionType>"``. Never raises."""
    return _read_allowed(uri, _parse_roots(roots), storage_options)


def iter_uri_bytes(
    uris: Iterable[str | None],
    roots: Sequence[str | Path],
    storage_options: StorageOptions | None = None,
    max_workers: int = 8,
) -> Iterator[tuple[int, bytes | None, str]]:
    """``(index, bytes or None, reason)`` for each of ``uris``, as :func:`read_uri_bytes` gives them,
    **in input order**. Up to ``max_workers`` reads run at once in a thread pool, and at most
    ``2 * max_workers`` results wait to be consumed, so a long iterable is never held in memory."""
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    parsed = _parse_roots(roots)
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="driftkeeper-read")
    pending: deque[tuple[int, Future[tuple[bytes | None, str]]]] = deque()
    try:
        for index, uri in enumerate(uris):
            pending.append((index, pool.submit(_read_allowed, uri, parsed, storage_options)))
            if len(pending) >= 2 * max_workers:
                done, future = pending.popleft()
                yield (done, *future.result())
        while pending:
            done, future = pending.popleft()
            yield (done, *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def thumbnail_data_uri(
    uri: str | None,
    roots: Sequence[str | Path],
    size: int = 64,
    *,
    storage_options: StorageOptions | None = None,
    contract: Any = None,
) -> str | None:
    """A small PNG of the image as a ``data:`` URI for reports, or None when not allowed/readable.

    Drawn by :func:`jobs.ml.preprocess.thumbnail_png` with the model's ``contract`` (its colour
    mode and input size): the owner sees what the model saw.
    """
    data, _ = read_uri_bytes(uri, roots, storage_options)
    if data is None:
        return None
    from drift.errors import ValidationError
    from jobs.ml.preprocess import thumbnail_png

    try:
        png = thumbnail_png(data, contract, size)
    except ValidationError:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def read_mask(
    uri: str | None,
    roots: Sequence[str | Path],
    n_classes: int,
    *,
    storage_options: StorageOptions | None = None,
) -> tuple[np.ndarray | None, str]:
    """A class-index mask (a single-channel image, e.g. a PNG of mode L or P) as an ``(H, W)``
    int64 array, and ``""``; or None and why not. Read only from inside ``roots``."""
    data, reason = read_uri_bytes(uri, roots, storage_options)
    if data is None:
        return None, "missing or outside image_roots" if reason in (MISSING, OUTSIDE) else reason
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                return None, "not a single-channel class-index image"
            mask = np.asarray(img).astype(np.int64)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, "not a readable image"
    if mask.ndim != 2 or mask.size == 0:
        return None, "not a single-channel class-index image"
    if mask.min() < 0 or mask.max() >= n_classes:
        return None, f"holds class indices outside 0..{n_classes - 1}"
    return mask, ""
