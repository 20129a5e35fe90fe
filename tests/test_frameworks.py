"""Real frameworks under ferricorn, end to end: Django, Pyramid (PasteDeploy) and Flask.

- Django: a project made at test time with ``django-admin startproject``, migrated (sqlite),
  with a superuser, a small upload app and whitenoise; served as ``<project>.wsgi`` from the
  project directory. A ``requests.Session`` logs in to the admin with the CSRF token, uploads
  a file, and fetches collected static files (whitenoise answers with ``wsgi.file_wrapper``).
- Pyramid: ``tests/frameworks/pyramid_app`` loaded with ``--paste production.ini``, driven by
  WebTest pointed at the live server (``WEBTEST_TARGET_URL``); the ini's logging sections,
  ``#name`` and ``--paste-global`` are checked too.
- Flask: ``tests/frameworks/flask_app.py``: a ``stream_with_context`` response read over a raw
  socket (chunked on HTTP/1.1, close-delimited on HTTP/1.0) and ``send_file`` of a few MB
  (``wsgi.file_wrapper``) with HEAD, conditional GETs and ranges.

Every flow runs on both worker classes, two workers each. The Django project and the data
files are made once per session; each (framework, worker class) server is started once, on
first use, and stopped at the end of the session.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from email.utils import formatdate
from pathlib import Path

import pytest
import requests
import webtest
from conftest import (
    REPO_ROOT,
    SUMMARY_PROVIDERS,
    TESTS_DIR,
    WORKER_CLASSES,
    Server,
    build_request,
    exchange,
    fetch,
    start_server,
)
from frameworks.flask_app import FILE_ENV, stream_chunk
from frameworks.wsgi_http_proxy import HttpProxy

FRAMEWORKS_DIR = TESTS_DIR / "frameworks"
PYRAMID_INI = FRAMEWORKS_DIR / "pyramid_app" / "production.ini"
VENV_BIN = Path(sys.executable).parent
WORKERS = 2
HTTP_TIMEOUT = 20.0  # seconds for one request of a test client

DJANGO_PROJECT = "ferrisite"
SUPERUSER = {"username": "ferris", "password": "crab-Claws-42!", "email": "ferris@example.com"}
UPLOAD_SIZE = 3 * 1024 * 1024 + 4321  # past Django's 2.5 MB in-memory limit: a temp file
FLASK_FILE_SIZE = 4 * 1024 * 1024 + 321
STREAM_CHUNKS = 1000
STREAM_CHUNK_SIZE = 64


# --- what passed, for the end-of-run summary ------------------------------------------------

_PASSED: dict[str, dict[str, list[str]]] = {}


def passed(framework: str, worker_class: str, what: str) -> None:
    """Notes a finished flow; the summary lists them per framework and worker class."""
    _PASSED.setdefault(framework, {}).setdefault(worker_class, []).append(what)


def version(dist: str) -> str:
    return importlib.metadata.version(dist)


def _summary() -> list[str]:
    labels = {
        "Django": f"Django {version('Django')} + whitenoise {version('whitenoise')}",
        "Pyramid": f"Pyramid {version('pyramid')} via --paste, WebTest {version('WebTest')}"
        f" through {'WSGIProxy2' if has_wsgiproxy() else 'a stand-in proxy (no WSGIProxy2)'}",
        "Flask": f"Flask {version('Flask')} / Werkzeug {version('Werkzeug')}",
    }
    lines = []
    for framework, by_class in _PASSED.items():
        parts = [f"{wc}: {', '.join(by_class[wc])}" for wc in WORKER_CLASSES if wc in by_class]
        lines.append(f"{labels[framework]}: passed on {'; '.join(parts)}")
    return lines


SUMMARY_PROVIDERS.append(_summary)


# --- servers shared by the tests -------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_servers():
    """``get(key, start)``: the server for ``key``, started by ``start()`` on first use.

    One server per (framework, worker class) serves every test of that pair; all are stopped
    when the session ends.
    """
    started = {}

    def get(key, start):
        if key not in started:
            started[key] = start()
        server = started[key]
        assert server.proc.poll() is None, f"the {key} server has exited:\n{server.stderr}"
        return server

    yield get
    for server in started.values():
        server.stop()


def serve(shared_servers, key, start):
    """Yields the shared server for ``key``; after the test, fails on any error it logged
    meanwhile (a traceback, an ``[ERROR]`` line), which a client may not have seen."""
    server = shared_servers(key, start)
    mark = server.log_mark()
    yield server
    logged = server.log_since(mark)
    assert "Traceback" not in logged and "[ERROR]" not in logged, logged[-4000:]


def base_url(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Runs a setup command; fails with its output when it fails."""
    full_env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    full_env.update(env or {})
    result = subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Django ----------------------------------------------------------------------------------

UPLOAD_VIEWS = '''\
"""A view that takes a multipart upload and answers with its size and sha256."""

import hashlib

from django.http import HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import get_token


def upload(request):
    if request.method == "GET":  # sets the csrftoken cookie and hands the token over
        return JsonResponse({"csrftoken": get_token(request)})
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    received = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in received.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse(
        {
            "name": received.name,
            "size": size,
            "sha256": digest.hexdigest(),
            "content_type": received.content_type,
            "storage": type(received).__name__,
            "note": request.POST.get("note"),
        }
    )
'''

UPLOAD_URLS = """\
from django.urls import path

from . import views

urlpatterns = [path("upload/", views.upload, name="upload")]
"""

URLS_ADDITION = """

# --- added by ferricorn's test_frameworks.py ---
from django.urls import include, path  # noqa: E402

urlpatterns += [path("filedrop/", include("filedrop.urls"))]
"""

SETTINGS_ADDITION = """

# --- added by ferricorn's test_frameworks.py ---
from pathlib import Path as _Path  # noqa: E402

ALLOWED_HOSTS = ["*"]
DEBUG = False
STATIC_ROOT = _Path(__file__).resolve().parent.parent / "staticfiles"
INSTALLED_APPS = [*INSTALLED_APPS, "filedrop"]
MIDDLEWARE = list(MIDDLEWARE)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
# With DEBUG off Django only mails errors; show them on stderr, where the test can see them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
"""

SETTINGS_PROBE = """\
import json
from django.conf import settings
print(json.dumps({
    "middleware": settings.MIDDLEWARE,
    "static_root": str(settings.STATIC_ROOT),
    "debug": settings.DEBUG,
    "installed_apps": settings.INSTALLED_APPS,
}))
"""


def django_admin() -> list[str]:
    script = VENV_BIN / "django-admin"
    return [str(script)] if script.exists() else [sys.executable, "-m", "django"]


@pytest.fixture(scope="session")
def django_project(tmp_path_factory) -> Path:
    """A startproject project, migrated, with a superuser, an upload app and whitenoise."""
    root = tmp_path_factory.mktemp("django-project")
    run([*django_admin(), "startproject", DJANGO_PROJECT, str(root)], cwd=root)
    package = root / DJANGO_PROJECT
    settings = package / "settings.py"
    assert "django.middleware.security.SecurityMiddleware" in settings.read_text()
    with settings.open("a") as out:
        out.write(SETTINGS_ADDITION)
    with (package / "urls.py").open("a") as out:
        out.write(URLS_ADDITION)
    app = root / "filedrop"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "views.py").write_text(UPLOAD_VIEWS)
    (app / "urls.py").write_text(UPLOAD_URLS)

    manage = [sys.executable, "manage.py"]
    # The last line: Django 5.2's shell first says what it imported automatically.
    probe = json.loads(run([*manage, "shell", "-c", SETTINGS_PROBE], cwd=root).splitlines()[-1])
    middleware = probe["middleware"]
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware", middleware
    assert probe["debug"] is False and "filedrop" in probe["installed_apps"], probe
    run([*manage, "check"], cwd=root)
    run([*manage, "migrate", "--noinput"], cwd=root)
    superuser_env = {f"DJANGO_SUPERUSER_{k.upper()}": v for k, v in SUPERUSER.items()}
    run([*manage, "createsuperuser", "--noinput"], cwd=root, env=superuser_env)
    run([*manage, "collectstatic", "--noinput"], cwd=root)
    assert Path(probe["static_root"]) == root / "staticfiles"
    assert (root / "staticfiles" / "admin" / "css" / "base.css").is_file()
    return root


@pytest.fixture
def django_server(shared_servers, django_project, worker_class):
    yield from serve(
        shared_servers,
        ("django", worker_class),
        lambda: start_server(
            f"{DJANGO_PROJECT}.wsgi",
            workers=WORKERS,
            worker_class=worker_class,
            cwd=django_project,
        ),
    )


def csrf_field(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, f"no csrfmiddlewaretoken in the page:\n{html[:2000]}"
    return match.group(1)


def admin_login(session: requests.Session, url: str, password: str) -> requests.Response:
    """GETs the login form, then POSTs it with its CSRF token; follows the redirect."""
    page = session.get(f"{url}/admin/login/?next=/admin/", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200, page.text[:2000]
    assert "csrftoken" in session.cookies, page.headers
    form = {
        "csrfmiddlewaretoken": csrf_field(page.text),
        "username": SUPERUSER["username"],
        "password": password,
        "next": "/admin/",
    }
    return session.post(f"{url}/admin/login/?next=/admin/", data=form, timeout=HTTP_TIMEOUT)


def test_django_admin_login_and_users_list(django_server, worker_class):
    url = base_url(django_server)
    with requests.Session() as session:
        refused = admin_login(session, url, "not-the-password")
        assert refused.status_code == 200, refused.text[:2000]
        assert "Please enter the correct username and password" in refused.text

        index = admin_login(session, url, SUPERUSER["password"])
        assert [r.status_code for r in index.history] == [302], index.history
        assert index.history[0].headers["Location"] == "/admin/"
        assert index.status_code == 200, django_server.stderr[-3000:]
        assert index.url == f"{url}/admin/"
        assert "Site administration" in index.text
        assert "sessionid" in session.cookies

        users = session.get(f"{url}/admin/auth/user/", timeout=HTTP_TIMEOUT)
        assert users.status_code == 200, users.text[:2000]
        assert users.history == [], "the session should still be logged in"
        assert "Select user to change" in users.text
        assert f">{SUPERUSER['username']}</a>" in users.text

        logout = session.post(
            f"{url}/admin/logout/",
            data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
            timeout=HTTP_TIMEOUT,
        )
        assert logout.status_code == 200, logout.text[:2000]
        assert "Logged out" in logout.text
        after = session.get(f"{url}/admin/auth/user/", timeout=HTTP_TIMEOUT)
        assert after.url.startswith(f"{url}/admin/login/"), after.url
    passed("Django", worker_class, "admin login")


def test_django_file_upload(django_server, worker_class):
    url = base_url(django_server)
    payload = os.urandom(UPLOAD_SIZE)
    with requests.Session() as session:
        token = session.get(f"{url}/filedrop/upload/", timeout=HTTP_TIMEOUT).json()["csrftoken"]
        response = session.post(
            f"{url}/filedrop/upload/",
            data={"csrfmiddlewaretoken": token, "note": "héllo wörld"},
            files={"file": ("payload.bin", payload, "application/octet-stream")},
            timeout=HTTP_TIMEOUT,
        )
    assert response.status_code == 200, (response.text[:2000], django_server.stderr[-3000:])
    assert response.json() == {
        "name": "payload.bin",
        "size": UPLOAD_SIZE,
        "sha256": sha256(payload),
        "content_type": "application/octet-stream",
        "storage": "TemporaryUploadedFile",
        "note": "héllo wörld",
    }
    passed("Django", worker_class, f"{UPLOAD_SIZE / 2**20:.1f} MiB upload")


@pytest.mark.parametrize("path", ["admin/css/base.css", "admin/js/vendor/jquery/jquery.js"])
def test_django_static_files_through_whitenoise(django_server, django_project, worker_class, path):
    expected = (django_project / "staticfiles" / path).read_bytes()
    url = f"{base_url(django_server)}/static/{path}"
    with requests.Session() as session:
        session.headers["Accept-Encoding"] = "identity"
        response = session.get(url, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text[:2000]
        assert response.content == expected
        assert response.headers["Content-Length"] == str(len(expected))
        assert "Transfer-Encoding" not in response.headers
        etag = response.headers["ETag"]

        again = session.get(url, headers={"If-None-Match": etag}, timeout=HTTP_TIMEOUT)
        assert again.status_code == 304, again.headers
        assert again.content == b""
    if path.endswith("base.css"):
        assert response.headers["Content-Type"].startswith("text/css")
        passed("Django", worker_class, "whitenoise static")


# --- Pyramid ---------------------------------------------------------------------------------


def has_wsgiproxy() -> bool:
    return importlib.util.find_spec("wsgiproxy") is not None


def paste_args(worker_class: str, target: str, *extra: str) -> list[str]:
    """ferricorn's arguments for the Pyramid app: ``--paste`` of ``target``, run from the
    checkout's root with ``tests/frameworks`` on the path so ``call:pyramid_app:main`` imports."""
    return [
        "--bind",
        "127.0.0.1:0",
        "--workers",
        str(WORKERS),
        "-k",
        worker_class,
        "--pythonpath",
        str(FRAMEWORKS_DIR.relative_to(REPO_ROOT)),
        *extra,
        "--paste",
        target,
    ]


def start_paste(spawn, worker_class: str, target: str, *extra: str) -> Server:
    """Starts ferricorn with ``--paste`` through ``spawn`` and waits for its workers."""
    server = spawn(paste_args(worker_class, target, *extra), cwd=REPO_ROOT)
    try:
        return server.wait_ready(workers=WORKERS)
    except BaseException:
        server.stop()
        raise


def ini_target(suffix: str = "") -> str:
    return str(PYRAMID_INI.relative_to(REPO_ROOT)) + suffix


@pytest.fixture
def pyramid_server(shared_servers, worker_class):
    yield from serve(
        shared_servers,
        ("pyramid", worker_class),
        lambda: start_paste(Server, worker_class, ini_target()),
    )


def live_testapp(server, monkeypatch) -> webtest.TestApp:
    """A WebTest app that sends every request to the live server.

    With WSGIProxy2 installed this is WebTest's own way (``$WEBTEST_TARGET_URL``); without
    it, a ``TestApp`` around ``frameworks.wsgi_http_proxy``, which does the same.
    """
    url = base_url(server)
    if has_wsgiproxy():
        monkeypatch.setenv("WEBTEST_TARGET_URL", url)
        return webtest.TestApp(url)
    monkeypatch.delenv("WEBTEST_TARGET_URL", raising=False)
    return webtest.TestApp(HttpProxy(url))


def test_pyramid_views_over_webtest(pyramid_server, worker_class, monkeypatch):
    app = live_testapp(pyramid_server, monkeypatch)

    home = app.get("/")
    assert home.status_int == 200
    assert home.content_type == "text/plain"
    assert home.text == "pyramid says hello\n"

    document = app.get("/json", params={"name": "ferris the crab"})
    assert document.content_type == "application/json"
    assert document.json == {
        "framework": "pyramid",
        "name": "ferris the crab",
        "numbers": [1, 2, 3],
        "app_name": "main",
    }

    form = app.post("/echo", {"a": "1", "b": "two words", "c": "ünï"})
    assert form.json["form"] == {"a": "1", "b": "two words", "c": "ünï"}
    assert form.json["content_type"] == "application/x-www-form-urlencoded"

    text = app.post("/echo", "plain body\n", content_type="text/plain")
    assert text.json["text"] == "plain body\n"
    assert text.json["length"] == len("plain body\n")

    big = os.urandom(300_000)
    blob = app.post("/echo", big, content_type="application/octet-stream")
    assert (blob.json["length"], blob.json["sha256"]) == (len(big), sha256(big))

    posted_json = app.post_json("/echo", {"key": [1, 2, "three"]})
    assert json.loads(posted_json.json["text"]) == {"key": [1, 2, "three"]}

    app.get("/no/such/page", status=404)
    app.get("/echo", status=404)  # the echo route answers POST only
    passed("Pyramid", worker_class, "views")


def test_pyramid_ini_settings_and_logging(pyramid_server, worker_class, monkeypatch):
    app = live_testapp(pyramid_server, monkeypatch)
    config = app.get("/config").json
    assert config["app_name"] == "main"
    assert config["greeting"] == "hello from the ini"  # from the ini's [DEFAULT]
    assert config["ini_dir"] == str(PYRAMID_INI.parent)  # %(here)s: the ini's absolute dir
    assert config["global_config"]["__file__"] == str(PYRAMID_INI)
    assert config["global_config"]["deploy_tag"] is None

    # The ini's [loggers]/[handlers]/[formatters] route the app's logger to stderr.
    mark = pyramid_server.log_mark()
    message = f"marker-{worker_class}-{os.getpid()}"
    assert app.get("/log", params={"message": message}).text == "logged\n"
    pyramid_server.wait_log(
        rf"^PYRAMID-INI-LOG INFO \[pyramid_app\] pyramid_app view says {message}$", since=mark
    )
    passed("Pyramid", worker_class, "ini settings + logging")


def test_pyramid_named_app_and_paste_global(server_factory, worker_class, monkeypatch):
    server = start_paste(
        server_factory.spawn,
        worker_class,
        ini_target("#admin"),
        "--paste-global",
        "deploy_tag=blue-42",
    )
    app = live_testapp(server, monkeypatch)
    config = app.get("/config").json
    assert config["app_name"] == "admin"
    assert config["greeting"] == "the admin app"
    assert config["global_config"]["deploy_tag"] == "blue-42"
    assert app.get("/json").json["app_name"] == "admin"
    passed("Pyramid", worker_class, "#admin + --paste-global")


# --- Flask -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def flask_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flask") / "download.bin"
    path.write_bytes(os.urandom(FLASK_FILE_SIZE))
    return path


@pytest.fixture
def flask_server(shared_servers, flask_file, worker_class):
    yield from serve(
        shared_servers,
        ("flask", worker_class),
        lambda: start_server(
            "frameworks.flask_app:app",
            workers=WORKERS,
            worker_class=worker_class,
            env={FILE_ENV: str(flask_file)},
        ),
    )


def closing_get(server, target: str, headers=None, method: str = "GET", version: str = "1.1"):
    """One request with ``Connection: close``; everything the server sent, parsed."""
    headers = [*(headers or []), ("Connection", "close")]
    raw = build_request(method, target, headers, version=version)
    result = exchange(server.address(), [raw], head_request=(method == "HEAD"))
    assert result.response is not None, f"no response to {method} {target}: {result.raw!r}"
    return result.response


def test_flask_streamed_response_is_chunked(flask_server, worker_class):
    expected = b"".join(stream_chunk(i, STREAM_CHUNK_SIZE) for i in range(STREAM_CHUNKS))
    target = f"/stream?n={STREAM_CHUNKS}&size={STREAM_CHUNK_SIZE}"

    response = fetch(flask_server.address(), build_request("GET", target))
    assert response.status == 200, response.body[:2000]
    assert response.version == "HTTP/1.1"
    assert response.header("Transfer-Encoding") == "chunked", response.headers
    assert response.header("Content-Length") is None, response.headers
    assert response.complete, "the chunked body should end with its last-chunk"
    assert len(response.body) == len(expected)
    assert response.body == expected

    # HTTP/1.0 has no chunked coding: the body runs until the server closes.
    old = closing_get(flask_server, target, version="1.0")
    assert old.status == 200
    assert old.header("Transfer-Encoding") is None, old.headers
    assert old.body == expected
    passed("Flask", worker_class, f"stream_with_context ({STREAM_CHUNKS} chunks)")


def test_flask_send_file(flask_server, flask_file, worker_class):
    data = flask_file.read_bytes()
    wrapper = json.loads(closing_get(flask_server, "/wrapper").body)["file_wrapper"]
    assert wrapper.startswith("ferricorn"), f"Flask got {wrapper}, not ferricorn's file_wrapper"

    full = closing_get(flask_server, "/file")
    assert full.status == 200, full.body[:2000]
    assert full.header("Content-Length") == str(len(data))
    assert full.complete
    assert len(full.body) == len(data) and full.raw_body == full.body
    assert sha256(full.body) == sha256(data)
    etag, modified = full.header("ETag"), full.header("Last-Modified")
    assert etag and modified, full.headers
    assert modified == formatdate(int(flask_file.stat().st_mtime), usegmt=True)

    head = closing_get(flask_server, "/file", method="HEAD")
    assert head.status == 200
    assert head.header("Content-Length") == str(len(data))
    assert head.header("ETag") == etag
    assert head.raw_body == b"", "a HEAD response has no body"

    for header in [("If-None-Match", etag), ("If-Modified-Since", modified)]:
        cached = closing_get(flask_server, "/file", [header])
        assert cached.status == 304, (header, cached.headers)
        assert cached.raw_body == b"", (header, cached.raw_body[:200])
    stale = closing_get(flask_server, "/file", [("If-None-Match", '"not-the-etag"')])
    assert stale.status == 200 and sha256(stale.body) == sha256(data)

    start, end = 1_000_000, 1_999_999
    part = closing_get(flask_server, "/file", [("Range", f"bytes={start}-{end}")])
    assert part.status == 206, part.headers
    assert part.header("Content-Range") == f"bytes {start}-{end}/{len(data)}"
    assert part.body == data[start : end + 1]
    tail = closing_get(flask_server, "/file", [("Range", "bytes=-777")])
    assert tail.status == 206 and tail.body == data[-777:]
    passed("Flask", worker_class, f"send_file ({len(data) / 2**20:.1f} MiB), HEAD, 304, ranges")
