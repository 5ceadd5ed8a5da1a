"""The review web app through litestar's TestClient: pages, decisions, CSRF, login, images, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from litestar.testing import TestClient
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from drift.errors import ConfigError
from jobs.cli.review_serve import review_serve_command
from jobs.config import Settings
from jobs.review.app import create_app
from jobs.review.serve import check_binding
from storage.models import Label, ReviewDecision
from tests.jobs.review import data

LOCAL = "http://127.0.0.1:8765"
HOSTILE_LABEL = '<script>alert("label")</script>'
HOSTILE_DEVICE = '"><img src=x onerror=alert(1)>'
HOSTILE_ID = "<b>p-bold</b>"


def png(path: Path, value: int = 120, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (8, 8), value).save(path)
    return path


@pytest.fixture
def world(database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Settings]:
    """Sixty unlabelled, low-confidence predictions with images under ``images/`` (the image root)."""
    monkeypatch.chdir(tmp_path)  # the stored input_uri is images/<id>.png
    preds = [data.Pred(f"p{i:03d}", i, 0.5, device="low" if i % 2 else "high") for i in range(60)]
    for p in preds:
        png(tmp_path / "images" / f"{p.pid}.png")
    data.store(database.session_factory, preds)
    return database, data.settings_for(database.url, image_roots=[str(tmp_path / "images")])


def client_for(database: Any, settings: Settings, token: str | None = None, base_url: str = LOCAL) -> TestClient[Any]:
    app = create_app(database.session_factory, settings, model="pets", token=token)
    return TestClient(app, base_url=base_url)


@pytest.fixture
def client(world: tuple[Any, Settings]) -> Iterator[TestClient[Any]]:
    with client_for(*world) as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def labels_in(database: Any) -> dict[str, str]:
    with database.session_factory() as s:
        return dict(s.execute(select(Label.prediction_id, Label.label)).all())  # type: ignore[arg-type]


def test_queue_page_is_server_rendered_under_a_strict_csp(client: TestClient[Any]) -> None:
    r = client.get("/m/pets")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/static/review.js" defer>']
    assert " style=" not in r.text and "http://" not in r.text and "https://" not in r.text  # nothing inline, no CDN
    assert len(re.findall(r'<li class="card"', r.text)) == 48
    assert "<kbd>1</kbd> cat" in r.text and "<kbd>3</kbd> other" in r.text
    images = re.findall(r'<img src="(/m/pets/img/[^"]+)"', r.text)
    assert len(images) == 48
    got = client.get(images[0])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png" and got.content[:4] == b"\x89PNG"
    assert client.get("/static/review.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/app.py").status_code == 404


def test_filters_and_pages(client: TestClient[Any]) -> None:
    first = client.get("/m/pets")
    assert 'id="next"' in first.text and "60 in the queue" in first.text
    second = client.get("/m/pets", params={"page": 1})
    assert len(re.findall(r'<li class="card"', second.text)) == 12 and 'id="prev"' in second.text
    low = client.get("/m/pets", params={"slice": "device=low", "kind": "low_confidence", "week": "2026-W45"})
    assert low.status_code == 200 and "30 in the queue" in low.text and "device=high" not in low.text
    assert "Nothing left to review" in client.get("/m/pets", params={"week": "2026-W46"}).text
    assert client.get("/m/pets", params={"kind": "nonsense"}).status_code == 400
    assert client.get("/m/pets", params={"week": "last week"}).status_code == 400
    assert client.get("/m/pets", params={"slice": "colour=red"}).status_code == 400
    assert client.get("/m/nobody").status_code == 404


def test_decisions_are_stored_validated_and_undone(client: TestClient[Any], world: tuple[Any, Settings]) -> None:
    database = world[0]
    token = csrf_of(client.get("/m/pets").text)
    headers = {"x-csrftoken": token}
    r = client.post("/m/pets/decide", json={"ids": ["p001", "p002"], "label": "dog"}, headers=headers)
    assert r.status_code == 200 and r.json()["decided"] == 2
    assert r.json()["progress"] == {"done": 2, "skipped": 0, "left": 58, "per_minute": None, "agreement": 0.0}
    assert client.post("/m/pets/decide", json={"ids": ["p003"], "label": None}, headers=headers).json()["decided"] == 1
    for body in (
        {"ids": ["p004"], "label": "zebra"},  # not a class label
        {"ids": ["p004"], "label": "accept"},  # only for segmentation models
        {"ids": ["nobody"], "label": "cat"},
        {"ids": [], "label": "cat"},
        {"ids": "p004", "label": "cat"},
        {"ids": [4], "label": "cat"},
        {"ids": ["p004"], "label": 3},
        ["p004"],
    ):
        bad = client.post("/m/pets/decide", json=body, headers=headers)
        assert bad.status_code == 400 and bad.json()["error"], body
    assert labels_in(database) == {"p001": "dog", "p002": "dog"}
    undone = client.post("/m/pets/undo", headers=headers).json()
    assert undone["undone"] == "p003" and undone["progress"]["skipped"] == 0
    assert client.post("/m/pets/undo", headers=headers).json()["undone"] in {"p001", "p002"}
    assert len(labels_in(database)) == 1
    assert client.get("/m/pets/progress").json()["done"] == 1


def test_a_form_post_works_without_script(client: TestClient[Any], world: tuple[Any, Settings]) -> None:
    token = csrf_of(client.get("/m/pets").text)
    form = {"_csrf_token": token, "ids": ["p010", "p011"], "label": "other", "back": "/m/pets?page=0"}
    r = client.post("/m/pets/decide", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/m/pets?page=0"
    assert labels_in(world[0]) == {"p010": "other", "p011": "other"}
    form |= {"ids": ["p012"], "back": "https://evil.example/"}
    assert client.post("/m/pets/decide", data=form, follow_redirects=False).headers["location"] == "/m/pets"


def test_every_write_needs_the_csrf_token(client: TestClient[Any], world: tuple[Any, Settings]) -> None:
    token = csrf_of(client.get("/m/pets").text)
    body = {"ids": ["p001"], "label": "cat"}
    assert client.post("/m/pets/decide", json=body).status_code == 403
    assert client.post("/m/pets/decide", json=body, headers={"x-csrftoken": "0" * 128}).status_code == 403
    assert client.post("/m/pets/decide", data={"ids": "p001", "label": "cat"}).status_code == 403
    assert client.post("/m/pets/undo").status_code == 403
    with client_for(*world) as other:  # a token without its cookie (another browser) is refused too
        assert other.post("/m/pets/decide", json=body, headers={"x-csrftoken": token}).status_code == 403
    foreign = {"x-csrftoken": token, "origin": "http://evil.example"}
    assert client.post("/m/pets/decide", json=body, headers=foreign).status_code == 403
    assert labels_in(world[0]) == {}
    assert client.post("/m/pets/decide", json=body, headers={"x-csrftoken": token}).status_code == 200


@pytest.mark.filterwarnings("ignore:The base_url:UserWarning")
def test_only_loopback_host_names_without_a_token(world: tuple[Any, Settings]) -> None:
    with client_for(*world, base_url="http://rebound.example:8765") as c:
        assert c.get("/m/pets").status_code == 403
    with client_for(*world, base_url="http://localhost:8765") as c:
        assert c.get("/m/pets").status_code == 200


def test_token_login_by_bearer_or_form(world: tuple[Any, Settings]) -> None:
    secret = "s3cret-token"
    with client_for(*world, token=secret, base_url="http://review.lan:8765") as c:
        page = c.get("/m/pets", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 302 and page.headers["location"].startswith("/login?next=%2Fm%2Fpets")
        assert c.get("/m/pets/progress").status_code == 401
        assert c.get("/m/pets/img/0/p001.png").status_code == 401
        assert c.get("/m/pets/progress", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/m/pets/progress", headers={"authorization": f"Bearer {secret}"}).status_code == 200
        form = c.get("/login", params={"next": "/m/pets"})
        assert form.status_code == 200 and 'type="password"' in form.text
        token = csrf_of(form.text)
        wrong = c.post("/login", data={"_csrf_token": token, "token": "guess", "next": "/m/pets"})
        assert wrong.status_code == 401 and "wrong token" in wrong.text
        assert c.post("/login", data={"token": secret}).status_code == 403  # the login form needs CSRF too
        ok = c.post("/login", data={"_csrf_token": token, "token": secret, "next": "/m/pets"}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/m/pets"
        cookie = ok.headers["set-cookie"]
        assert "dk_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert secret not in cookie
        assert c.get("/m/pets").status_code == 200
        assert c.get("/m/pets/progress").status_code == 200
        c.post("/logout", headers={"x-csrftoken": token})
        c.cookies.delete("dk_session")
        assert c.get("/m/pets/progress").status_code == 401
    with client_for(*world, token=secret) as other:  # a cookie from another run of the app is no login
        other.cookies.set("dk_session", cookie.split(";")[0].split("=", 1)[1])
        assert other.get("/m/pets/progress").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/secret.png",
        "..%2fsecret.png",
        "%2e%2e%2fsecret.png",
        "%2E%2E%2Fsecret.png",
        "sub/%2e%2e/%2e%2e/secret.png",
        "..%5csecret.png",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "escape.png",  # a symlink leaving the root
        "linked/secret.png",  # a symlinked folder leaving the root
        "p001.png%00.png",
        "notes.txt",  # inside the root, but not an image
        "missing.png",
    ],
    ids=lambda p: p.replace("%", "pct-").replace("/", "|"),
)
def test_images_only_from_inside_the_roots(client: TestClient[Any], tmp_path: Path, path: str) -> None:
    secret = png(tmp_path / "secret.png", 7)
    outside = tmp_path / "outside"
    png(outside / "secret.png", 9)
    root = tmp_path / "images"
    (root / "escape.png").symlink_to(secret)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "notes.txt").write_text("not an image")
    (root / "sub").mkdir()
    r = client.get(f"/m/pets/img/0/{path}")
    assert r.status_code in (400, 404), r.status_code
    assert not r.content.startswith(b"\x89PNG")
    assert client.get("/m/pets/img/1/p001.png").status_code == 404  # no second root
    assert client.get("/m/pets/img/0/p001.png").status_code == 200


def test_a_symlink_inside_the_root_to_the_root_is_fine(client: TestClient[Any], tmp_path: Path) -> None:
    (tmp_path / "images" / "alias.png").symlink_to(tmp_path / "images" / "p001.png")
    assert client.get("/m/pets/img/0/alias.png").status_code == 200


def test_hostile_text_is_escaped(database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    preds = [data.Pred(HOSTILE_ID, 1, 0.5, device=HOSTILE_DEVICE), data.Pred("p2", 2, 0.5)]
    data.store(database.session_factory, preds)
    labels = ["cat", HOSTILE_LABEL, "other"]
    settings = data.settings_for(database.url, class_labels=labels)
    with client_for(database, settings) as c:
        page = c.get("/m/pets").text
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>p-bold" not in page
        assert "&lt;script&gt;alert(&#34;label&#34;)&lt;/script&gt;" in page
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
        assert 'data-id="&lt;b&gt;p-bold&lt;/b&gt;"' in page
        token = csrf_of(page)
        r = c.post("/m/pets/decide", json={"ids": [HOSTILE_ID], "label": HOSTILE_LABEL}, headers={"x-csrftoken": token})
        assert r.status_code == 200  # a hostile but configured label is a label like any other
        bad = c.post("/m/pets/decide", json={"ids": ["p2"], "label": "<i>x</i>"}, headers={"x-csrftoken": token})
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/json")
    assert labels_in(database) == {HOSTILE_ID: HOSTILE_LABEL}


def test_segmentation_masks_are_drawn_and_accepted(
    database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mask = tmp_path / "images" / "m1.png"
    mask.parent.mkdir(parents=True)
    Image.fromarray(__import__("numpy").eye(8, dtype="uint8") * 2, mode="L").save(mask)
    png(tmp_path / "images" / "s1.png")
    preds = [data.Pred("s1", 1, 0.95, mask_uri=str(mask))]
    data.store(database.session_factory, preds, flags=[("s1", "confidently_wrong", None, "dog")], task="segmentation")
    settings = data.settings_for(database.url, task="segmentation", image_roots=[str(tmp_path / "images")])
    with client_for(database, settings) as c:
        page = c.get("/m/pets").text
        assert "<kbd>a</kbd> accept" in page and "<kbd>r</kbd> reject" in page
        [overlay] = re.findall(r'<img class="mask" src="([^"]+)"', page)
        drawn = c.get(overlay)
        assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
        import io

        with Image.open(io.BytesIO(drawn.content)) as img:
            assert img.mode == "RGBA" and img.getpixel((0, 0))[3] > 0 and img.getpixel((1, 0))[3] == 0
        r = c.post("/m/pets/decide", json={"ids": ["s1"], "label": "accept"}, headers={"x-csrftoken": csrf_of(page)})
        assert r.status_code == 200 and r.json()["decided"] == 1
    with database.session_factory() as s:
        assert s.scalars(select(ReviewDecision.verdict)).all() == ["accept"]


def test_binding_beyond_loopback_needs_a_token() -> None:
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", "t")
    with pytest.raises(ConfigError, match=r"review\.token"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ConfigError):
        check_binding("192.168.1.20", "")


def test_the_command_refuses_a_public_host_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTKEEPER_CONFIG", raising=False)
    app = typer.Typer()
    app.command("review")(review_serve_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the name
    result = CliRunner().invoke(app, ["review", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "without a token" in result.output
    assert not (tmp_path / "var").exists()  # refused before touching a database
