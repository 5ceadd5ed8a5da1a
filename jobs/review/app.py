"""The review web app (``driftkeeper review``): a queue per model, labelled from the keyboard.

Server-rendered pages (Jinja2, autoescape) and a small static script; nothing from a CDN.
Security, from the outside in:

* **Host.** Without a token the app answers only to loopback host names (``127.0.0.1``,
  ``localhost``, ``[::1]``), so a DNS-rebinding page cannot reach it.
* **Login.** With a token every route but ``/login`` and ``/static`` needs
  ``Authorization: Bearer TOKEN`` or the HttpOnly session cookie the login form sets.
* **CSRF.** Every POST carries litestar's signed double-submit token (the ``x-csrftoken``
  header, or the ``_csrf_token`` form field) matching its cookie, and a foreign ``Origin`` is refused.
* **Images** are served only from inside the model's ``image_roots``: the path is resolved
  (symlinks too) and refused when it leaves its root, holds ``..``, a backslash or a NUL.
* **Headers.** A strict Content-Security-Policy (scripts, styles and images from the app only,
  no inline script), ``nosniff``, no referrer, no framing.
* **Decisions** are validated against the model's class labels by :func:`jobs.review.queue.decide`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import anyio.to_thread
import jinja2
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie, ResponseHeader
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import NotFoundError, ValidationError
from jobs.config import ModelSettings, Settings
from jobs.images import within_roots
from jobs.review.queue import ReviewKind, decide, progress, review_queue, undo
from jobs.review.settings import ReviewSettings
from storage.clock import Clock, wall_clock

HERE = Path(__file__).parent
STATIC = {  # the only files /static serves: name -> (path, media type)
    "review.js": (HERE / "static" / "review.js", "text/javascript"),
    "review.css": (HERE / "static" / "review.css", "text/css"),
    "favicon.svg": (HERE / "static" / "favicon.svg", "image/svg+xml"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # not no-referrer: the browser would then send "Origin: null" on our own POSTs
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
IMAGE_TYPES |= {".webp": "image/webp", ".bmp": "image/bmp"}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SESSION_COOKIE = "dk_session"
CLASS_KEYS = "1234567890abcdefghijklmnopqrstvwyz"  # x (skip) and u (undo) are taken
MASK_CHOICES = (("a", "accept"), ("r", "reject"))
MAX_IDS = 1000


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header, without its port.

    >>> host_name("127.0.0.1:8765"), host_name("[::1]:80"), host_name("localhost")
    ('127.0.0.1', '[::1]', 'localhost')
    """
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def class_keys(labels: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(key, label) for each class label that gets a key: digits first, then letters but x and u.

    >>> class_keys(["cat", "dog"])
    (('1', 'cat'), ('2', 'dog'))
    """
    return tuple(zip(CLASS_KEYS, labels, strict=False))


def safe_relative(rel: str) -> str | None:
    """``rel`` if it is a plain relative path: no ``..``/``.``/empty part, backslash, NUL or drive.

    >>> safe_relative("a/b.png"), safe_relative("../x"), safe_relative("a\\\\..\\\\b"), safe_relative("/etc/passwd")
    ('a/b.png', None, None, None)
    """
    if not rel or "\\" in rel or "\x00" in rel or ":" in rel or rel.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    return rel


def image_path(roots: Sequence[Path], root_index: int, rel: str) -> Path | None:
    """The file ``rel`` names inside ``roots[root_index]``, resolved, or None when refused."""
    if not 0 <= root_index < len(roots) or safe_relative(rel) is None:
        return None
    root = roots[root_index]
    path = within_roots(str(root / rel), (root,))  # resolves symlinks, then checks the root again
    return path if path is not None and path.suffix.lower() in IMAGE_TYPES else None


def image_url(model: str, kind: str, uri: str | None, roots: Sequence[Path]) -> str | None:
    """The app's URL for ``uri`` (``/m/MODEL/img/ROOT/REL``), or None when it is outside every root."""
    path = within_roots(uri, roots)
    if path is None:
        return None
    for i, root in enumerate(roots):
        try:
            rel = path.relative_to(root.resolve())
        except ValueError:
            continue
        return f"/m/{quote(model, safe='')}/{kind}/{i}/{quote(rel.as_posix())}"
    return None


def colour_mask(path: Path) -> bytes:
    """A class-index mask as an RGBA PNG to lay over its image: class 0 clear, others tinted."""
    import numpy as np
    from PIL import Image

    palette = np.array(
        [[0, 0, 0, 0], [230, 25, 75, 140], [60, 180, 75, 140], [0, 130, 200, 140], [245, 130, 48, 140]],
        dtype=np.uint8,
    )
    with Image.open(path) as img:
        index = np.asarray(img.convert("L") if img.mode not in ("L", "P") else img).astype(np.int64)
    colours = palette[np.where(index == 0, 0, 1 + (index - 1) % (len(palette) - 1))]
    buffer = io.BytesIO()
    Image.fromarray(colours, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment (built on first use): autoescape everywhere, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    env.filters["num"] = lambda v: "—" if v is None else f"{v:.3g}"
    return env


def html(template: str, status_code: int = 200, **context: Any) -> Response[str]:
    return Response(
        environment().get_template(template).render(**context), media_type=MediaType.HTML, status_code=status_code
    )


def parse_slice(value: str | None) -> tuple[str, str] | None:
    """The ``slice`` filter, ``FEATURE=VALUE``, as a pair (None when empty).

    >>> parse_slice("device=low"), parse_slice("")
    (('device', 'low'), None)
    """
    if not value or not value.strip():
        return None
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise ValidationError(f"slice: write FEATURE=VALUE, e.g. device=low; not {value!r}")
    return key.strip(), val.strip()


def parse_kind(kind: str | None) -> ReviewKind | None:
    if not kind:
        return None
    try:
        return ReviewKind(kind)
    except ValueError as exc:
        allowed = ", ".join(k.value for k in ReviewKind)
        raise ValidationError(f"kind: unknown review kind {kind!r}; allowed: {allowed}") from exc


def csrf_token(request: Request[Any, Any, Any]) -> str:
    from litestar.utils.scope.state import ScopeState

    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else ""


def create_app(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    model: str | None,
    token: str | None,
    clock: Clock = wall_clock,
) -> Litestar:
    """The review app for ``model`` (every configured model when None); ``token`` turns the login on."""
    models = {m.name: m for m in settings.select_models(model)}
    review: ReviewSettings = getattr(settings, "review", ReviewSettings())
    reviewer = review.reviewer
    secret = secrets.token_bytes(32)
    session_value = hmac.new(secret, b"session:" + (token or "").encode(), hashlib.sha256).hexdigest()
    roots = {name: tuple(Path(r).resolve() for r in m.image_roots) for name, m in models.items()}

    def model_or_404(name: str) -> ModelSettings:
        if name not in models:
            raise NotFoundException(f"no model {name!r} here")
        return models[name]

    def authenticated(request: Request[Any, Any, Any]) -> bool:
        if token is None:
            return True
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and hmac.compare_digest(bearer[7:].strip().encode(), token.encode()):
            return True
        return hmac.compare_digest(request.cookies.get(SESSION_COOKIE, ""), session_value)

    async def guard(request: Request[Any, Any, Any]) -> Response[Any] | None:
        if token is None and host_name(request.headers.get("host", "")) not in LOOPBACK_NAMES:
            raise PermissionDeniedException("this review app answers only to 127.0.0.1 and localhost")
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
                raise PermissionDeniedException("cross-origin request refused")
            if origin == "null":
                raise PermissionDeniedException("cross-origin request refused")
        path = request.url.path
        if authenticated(request) or path in ("/login", "/favicon.ico") or path.startswith("/static/"):
            return None
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return Redirect("/login?" + urlencode({"next": path}))
        raise HTTPException(status_code=401, detail="log in first (bearer token or the login form)")

    def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))

    def progress_dict(name: str) -> dict[str, Any]:
        return progress(session_factory, settings, name, now=clock()).to_dict()

    @get("/", sync_to_thread=False)
    def index() -> Response[Any]:
        if len(models) == 1:
            return Redirect(f"/m/{quote(next(iter(models)), safe='')}")
        return html("index.j2", models=sorted(models), csrf="")

    @get("/m/{name:str}")
    async def queue_page(
        request: Request[Any, Any, Any],
        name: FromPath[str],
        week: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        slice_: Annotated[str | None, QueryParameter(name="slice")] = None,
        page: FromQuery[int] = 0,
    ) -> Response[str]:
        settings_m = model_or_404(name)
        week = week or None
        review_kind = parse_kind(kind)
        slice_pair = parse_slice(slice_)
        q = await run(
            review_queue,
            session_factory,
            settings,
            name,
            week=week,
            kind=review_kind,
            slice_=slice_pair,
            page=max(page, 0),
            now=clock(),
        )
        done = await run(progress, session_factory, settings, name, now=clock())
        segmentation = settings_m.task == "segmentation"
        choices = (
            MASK_CHOICES + tuple(zip("1234567890", q.class_labels, strict=False))
            if segmentation
            else class_keys(q.class_labels)
        )
        cards = [
            {
                "item": item,
                "img": image_url(name, "img", item.input_uri, roots[name]),
                "mask": image_url(name, "mask", item.mask_uri, roots[name]) if item.mask_uri else None,
            }
            for item in q.items
        ]
        filters = {"week": week or "", "kind": kind or "", "slice_": slice_ or ""}

        def page_url(n: int) -> str:
            query = [(k, v) for k, v in (("week", week), ("kind", kind), ("slice", slice_)) if v]
            return f"/m/{quote(name, safe='')}?" + urlencode([*query, ("page", str(n))])

        return html(
            "queue.j2",
            model=name,
            q=q,
            cards=cards,
            choices=choices,
            all_labels=("accept", "reject", *q.class_labels) if segmentation else q.class_labels,
            segmentation=segmentation,
            kinds=[k.value for k in ReviewKind],
            filters=filters,
            progress=done,
            csrf=csrf_token(request),
            reviewer=reviewer,
            prev_url=page_url(q.page - 1) if q.page > 0 else None,
            next_url=page_url(q.page + 1) if (q.page + 1) * q.per_page < q.total else None,
            back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        )

    @post("/m/{name:str}/decide", status_code=200)
    async def decide_route(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
        model_or_404(name)
        content_type, _ = request.content_type
        is_form = content_type != MediaType.JSON
        ids: Any
        if is_form:
            form = await request.form()
            ids = list(form.getall("ids")) if "ids" in form else []
            label: Any = form.get("label") or None
            back = str(form.get("back") or "")
        else:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValidationError('send a JSON object: {"ids": [...], "label": LABEL or null}')
            ids, label, back = body.get("ids"), body.get("label"), ""
        if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
            raise ValidationError(f"ids: a list of 1 to {MAX_IDS} prediction ids")
        if not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids):
            raise ValidationError("ids: each a prediction id (text, at most 200 characters)")
        if label is not None and not isinstance(label, str):
            raise ValidationError("label: a class label, or null to skip")
        n = await run(decide, session_factory, settings, name, ids, label, reviewer=reviewer, now=clock())
        if is_form:
            return Redirect(
                back if back.startswith(f"/m/{quote(name, safe='')}") else f"/m/{quote(name, safe='')}", status_code=303
            )
        return Response({"decided": n, "progress": await run(progress_dict, name)})

    @post("/m/{name:str}/undo", status_code=200)
    async def undo_route(name: FromPath[str]) -> dict[str, Any]:
        model_or_404(name)
        undone = await run(undo, session_factory, settings, name, reviewer=reviewer)
        return {"undone": undone, "progress": await run(progress_dict, name)}

    @get("/m/{name:str}/progress")
    async def progress_route(name: FromPath[str]) -> dict[str, Any]:
        model_or_404(name)
        result: dict[str, Any] = await run(progress_dict, name)
        return result

    @get("/m/{name:str}/img/{root:int}/{rel:path}", sync_to_thread=True)
    def image(name: FromPath[str], root: FromPath[int], rel: FromPath[str]) -> Response[bytes]:
        model_or_404(name)
        path = image_path(roots[name], root, rel.lstrip("/"))
        if path is None:
            raise NotFoundException("no such image inside image_roots")
        return Response(path.read_bytes(), media_type=IMAGE_TYPES[path.suffix.lower()])

    @get("/m/{name:str}/mask/{root:int}/{rel:path}", sync_to_thread=True)
    def mask(name: FromPath[str], root: FromPath[int], rel: FromPath[str]) -> Response[bytes]:
        model_or_404(name)
        path = image_path(roots[name], root, rel.lstrip("/"))
        if path is None:
            raise NotFoundException("no such mask inside image_roots")
        try:
            return Response(colour_mask(path), media_type="image/png")
        except (OSError, ValueError) as exc:
            raise NotFoundException("not a readable mask") from exc

    @get(["/static/{file:str}", "/favicon.ico"], sync_to_thread=False)
    def static(file: FromPath[str] = "favicon.svg") -> Response[bytes]:
        if file not in STATIC:
            raise NotFoundException("no such file")
        path, media_type = STATIC[file]
        return Response(path.read_bytes(), media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    @get("/login", sync_to_thread=False)
    def login_form(request: Request[Any, Any, Any], next: FromQuery[str] = "/") -> Response[str]:
        return html("login.j2", csrf=csrf_token(request), next=next, error=None, enabled=token is not None)

    @post("/login", status_code=200)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        given, target = str(form.get("token") or ""), str(form.get("next") or "/")
        target = target if target.startswith("/") and not target.startswith("//") else "/"
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            return html("login.j2", 401, csrf=csrf_token(request), next=target, error="wrong token", enabled=True)
        cookie = Cookie(key=SESSION_COOKIE, value=session_value, httponly=True, samesite="strict", path="/")
        return Redirect(target, cookies=[cookie], status_code=303)

    @post("/logout", sync_to_thread=False)
    def logout() -> Response[Any]:
        return Redirect("/login", cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")], status_code=303)

    def bad_request(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return Response({"error": str(exc)}, status_code=400, headers=SECURITY_HEADERS)

    def not_found(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return Response({"error": str(exc)}, status_code=404, headers=SECURITY_HEADERS)

    return Litestar(
        route_handlers=[
            index,
            queue_page,
            decide_route,
            undo_route,
            progress_route,
            image,
            mask,
            static,
            login_form,
            login,
            logout,
        ],
        before_request=guard,
        csrf_config=CSRFConfig(
            secret=secrets.token_hex(32), cookie_httponly=True, cookie_samesite="strict", cookie_name="dk_csrf"
        ),
        response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
        exception_handlers={ValidationError: bad_request, NotFoundError: not_found},
        openapi_config=None,
        logging_config=None,
    )
