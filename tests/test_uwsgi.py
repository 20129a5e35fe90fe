"""The uwsgi protocol (`--protocol uwsgi`, `--uwsgi-allow-from`): raw packets side by side
with a live gunicorn 27, and requests through a real nginx's `uwsgi_pass`, on both workers.

Where ferricorn differs from gunicorn on purpose (docs/differences.md, "The uwsgi
protocol"), the test says what each answers: the packet's REMOTE_ADDR, PATH_INFO decoded
once, and 400/403/501 for bad packets where gunicorn answers 500.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    gunicorn_command,
    parse_response,
    read_until_close,
    run_cli,
    wait_for,
)

APP = "apps.uwsgi_app:app"
# gunicorn's worker for each ferricorn worker class.
GUNICORN_WORKER = {"sync": "sync", "async": "gthread"}
# Keys a server fills from its own socket, not from the packet.
SOCKET_KEYS = {"REMOTE_ADDR", "REMOTE_PORT", "SERVER_PORT"}


def packet(pairs, modifier1=0, size=None) -> bytes:
    """A uwsgi packet: modifier1, the vars' size (u16 LE), modifier2, then the vars."""
    block = b"".join(len(p).to_bytes(2, "little") + p for pair in pairs for p in pair)
    size = len(block) if size is None else size
    return bytes([modifier1]) + size.to_bytes(2, "little") + b"\0" + block


def nginx_vars(method=b"GET", path=b"/", query=b"", extra=()):
    """The vars nginx's uwsgi_params sends, for a client at 203.0.113.7:40123."""
    uri = path + (b"?" + query if query else b"")
    return [
        (b"QUERY_STRING", query),
        (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", uri),
        (b"PATH_INFO", path),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.7"),
        (b"REMOTE_PORT", b"40123"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        *extra,
    ]


def send(server, data: bytes):
    """One connection: `data`, then read until the server closes; the parsed response."""
    with socket.create_connection(server.address(), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(data)
        raw, _ = read_until_close(sock)
    return parse_response(raw)


def environ(server, data: bytes) -> dict:
    response = send(server, data)
    assert response is not None and response.status == 200, response
    return json.loads(response.body)


@pytest.fixture
def pair(server_factory, worker_class):
    """ferricorn (this worker class) and gunicorn 27 (its counterpart), both speaking uwsgi."""

    def start(*extra: str, app: str = APP):
        ours = server_factory(app, "--protocol", "uwsgi", *extra, worker_class=worker_class)
        theirs = server_factory(
            app,
            "--protocol",
            "uwsgi",
            *extra,
            worker_class=GUNICORN_WORKER[worker_class],
            command=gunicorn_command(),
        )
        return ours, theirs

    return start


SAME_ENVIRON = {
    "nginx-get": packet(nginx_vars(path=b"/items/7", query=b"a=1&b=two")),
    "nginx-post": packet(
        nginx_vars(b"POST", b"/submit", extra=[(b"CONTENT_TYPE", b"text/plain")])
        + [(b"CONTENT_LENGTH", b"5"), (b"HTTP_CONTENT_LENGTH", b"5")]
        + [(b"HTTP_CONTENT_TYPE", b"text/plain")]
    )
    + b"hello",
    "no-vars": packet([]),
    "headers": packet(
        nginx_vars(
            extra=[
                (b"HTTP_USER_AGENT", b"curl/8"),
                (b"HTTP_X_FORWARDED_FOR", b"198.51.100.1"),
                (b"HTTP_ACCEPT_ENCODING", b"gzip"),
                (b"HTTP_COOKIE", b"a=1; b=2"),
                (b"HTTP_X_A", b"first"),
                (b"HTTP_X_A", b"last"),
            ]
        )
    ),
    "https-on": packet(nginx_vars(extra=[(b"HTTPS", b"on")])),
    "url-scheme": packet([(b"wsgi.url_scheme", b"https"), (b"PATH_INFO", b"/s")]),
    "latin-1-header": packet(nginx_vars(extra=[(b"HTTP_X_NAME", b"caf\xe9")])),
    "method-only": packet([(b"REQUEST_METHOD", b"DELETE")]),
    "close": packet(nginx_vars(extra=[(b"HTTP_CONNECTION", b"close")])),
}


@pytest.mark.parametrize("name", sorted(SAME_ENVIRON))
def test_same_environ_as_gunicorn(pair, name):
    ours, theirs = pair()
    data = SAME_ENVIRON[name]
    mine, gunicorns = environ(ours, data), environ(theirs, data)
    for key in SOCKET_KEYS:
        mine.pop(key, None), gunicorns.pop(key, None)
    assert mine == gunicorns


def test_remote_addr_comes_from_the_packet(pair):
    """Deliberate: gunicorn 27 gives the socket's peer (nginx) as REMOTE_ADDR; ferricorn
    gives the client nginx names, as the issue asks and uWSGI itself does."""
    ours, theirs = pair()
    data = packet(nginx_vars())
    mine, gunicorns = environ(ours, data), environ(theirs, data)
    assert (mine["REMOTE_ADDR"], mine["REMOTE_PORT"]) == ("203.0.113.7", "40123")
    assert gunicorns["REMOTE_ADDR"] == "127.0.0.1"
    assert mine["SERVER_NAME"] == gunicorns["SERVER_NAME"] == "127.0.0.1"  # the socket's
    # Without REMOTE_ADDR in the packet, the socket's peer stands, as in gunicorn.
    assert environ(ours, packet([]))["REMOTE_ADDR"] == "127.0.0.1"


def test_path_info_is_decoded_once(pair):
    """Deliberate: nginx's PATH_INFO is already decoded; gunicorn 27 decodes it again
    (`%2520` from the client arrives as `%20` and becomes a space) and re-encodes its
    non-ASCII bytes as UTF-8; ferricorn passes PATH_INFO's bytes as they came."""
    ours, theirs = pair()
    data = packet(nginx_vars(path=b"/a%20b/caf\xc3\xa9"))
    mine, gunicorns = environ(ours, data), environ(theirs, data)
    assert mine["PATH_INFO"] == "/a%20b/caf\u00c3\u00a9"
    assert gunicorns["PATH_INFO"] == "/a b/caf\u00c3\u0083\u00c2\u00a9"


BAD_PACKETS = {
    # name: (packet, ferricorn's status); gunicorn 27 answers each with 500.
    "modifier1": (packet(nginx_vars(), modifier1=5), 501),
    "truncated-value": (packet([(b"K", b"value")], size=9), 400),
    "truncated-key-size": (packet([], size=1) + b"\x05", 400),
    "too-many-vars": (packet([(b"K%d" % i, b"") for i in range(1001)]), 400),
}


@pytest.mark.parametrize("name", sorted(BAD_PACKETS))
def test_bad_packets_get_a_4xx_and_close(pair, name):
    ours, theirs = pair()
    data, status = BAD_PACKETS[name]
    mine, gunicorns = send(ours, data), send(theirs, data)
    assert (mine.status, mine.header("Connection")) == (status, "close")
    assert gunicorns.status == 500  # its handle_error does not know the uwsgi errors
    # The worker lives on and serves the next packet.
    assert environ(ours, packet([]))["PATH_INFO"] == "/"


@pytest.mark.parametrize(
    "vars_, status",
    [
        ([(b"CONTENT_LENGTH", b"abc")], 400),  # gunicorn: 0, the bytes left unread
        ([(b"REQUEST_METHOD", b"G T")], 400),
        ([(b"HTTP_X", b"v" * 9000)], 431),  # --limit-request-field_size
        ([(b"PATH_INFO", b"/" + b"p" * 5000)], 414),  # --limit-request-line
    ],
)
def test_packets_the_http_limits_refuse(server_factory, worker_class, vars_, status):
    srv = server_factory(APP, "--protocol", "uwsgi", worker_class=worker_class)
    response = send(srv, packet(vars_))
    assert (response.status, response.header("Connection")) == (status, "close")


def test_peer_not_allowed_is_refused(pair):
    ours, theirs = pair("--uwsgi-allow-from", "10.0.0.1")
    mine, gunicorns = send(ours, packet(nginx_vars())), send(theirs, packet(nginx_vars()))
    assert (mine.status, mine.header("Connection")) == (403, "close")
    assert gunicorns.status == 500


@pytest.mark.parametrize("allow", ["*", "127.0.0.0/8", "10.0.0.1,127.0.0.1"])
def test_allowed_peers(server_factory, allow):
    srv = server_factory(APP, "--protocol", "uwsgi", "--uwsgi-allow-from", allow)
    assert environ(srv, packet([]))["PATH_INFO"] == "/"


def test_unsized_body_is_not_chunked(pair):
    """gunicorn's is_chunked: nginx passes a uwsgi body on as bytes, so chunk markers would
    reach the client; the body runs to the close instead."""
    ours, theirs = pair(app="apps.uwsgi_app:unsized")
    for server in (ours, theirs):
        with socket.create_connection(server.address(), timeout=SOCKET_TIMEOUT) as sock:
            sock.sendall(packet([(b"PATH_INFO", b"/u")]))
            raw, _ = read_until_close(sock)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Transfer-Encoding" not in head and b"Connection: close" in head
        assert body == b"one two"


@pytest.mark.parametrize(
    "args",
    [["--protocol", "spdy"], ["--protocol", "uwsgi", "--uwsgi-allow-from", "nope"]],
)
def test_bad_settings_are_one_line(args):
    result = run_cli(*args, APP)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("--protocol" in lines[0] or "--uwsgi-allow-from" in lines[0])


# --- behind a real nginx ------------------------------------------------------------------


def _nginx_binary() -> str | None:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None and os.environ.get("CI"):
        pytest.fail("CI must have nginx (the Makefile installs it with apt-get)")
    return found


NGINX_CONF = """\
{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 4m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include uwsgi_params;
            uwsgi_pass 127.0.0.1:{upstream};
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    """Starts nginx in front of a uwsgi server at 127.0.0.1:PORT; yields its address."""
    binary = _nginx_binary()
    if binary is None:
        pytest.skip("nginx is absent (Debian: apt-get install -y nginx)")
    started = []

    def start(upstream: int) -> tuple[str, int]:
        tmp = tmp_path / f"nginx-{upstream}"
        tmp.mkdir()
        shutil.copy("/etc/nginx/uwsgi_params", tmp / "uwsgi_params")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # As root, nginx's workers would switch to `nobody`: keep them this user.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, upstream=upstream))
        command = [binary, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(proc)

        def accepting():
            assert proc.poll() is None, f"nginx exited: {proc.stderr.read().decode()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(accepting, 10, "nginx to accept connections", interval=0.05)
        return ("127.0.0.1", port)

    yield start
    for proc in started:
        proc.send_signal(signal.SIGQUIT)  # graceful: nginx's own stop
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def through_nginx(address, method, target, headers=(), body=b""):
    """One HTTP/1.1 request from 127.0.0.2 (so the client differs from nginx, at
    127.0.0.1); the response and the client's (address, port)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {address[0]}:{address[1]}"]
    lines += [f"{k}: {v}" for k, v in headers] + ["Connection: close"]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(
        address, timeout=SOCKET_TIMEOUT, source_address=("127.0.0.2", 0)
    ) as sock:
        client = sock.getsockname()
        sock.sendall(request)
        raw, _ = read_until_close(sock)
    return parse_response(raw), client


def test_behind_nginx(server_factory, worker_class, nginx):
    srv = server_factory(APP, "--protocol", "uwsgi", worker_class=worker_class)
    front = nginx(srv.port)
    response, client = through_nginx(front, "GET", "/items/7?a=1&b=two", [("X-Test", "yes")])
    assert response.status == 200
    seen = json.loads(response.body)
    assert (seen["REQUEST_METHOD"], seen["PATH_INFO"], seen["QUERY_STRING"]) == (
        "GET",
        "/items/7",
        "a=1&b=two",
    )
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == (client[0], str(client[1]))
    assert seen["HTTP_X_TEST"] == "yes" and seen["HTTP_HOST"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http"
    body = os.urandom(1 << 20)
    response, _ = through_nginx(
        front, "POST", "/upload", [("Content-Type", "application/x-bin")], body
    )
    assert response.status == 200
    seen = json.loads(response.body)
    assert (seen["body_length"], seen["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    assert (seen["CONTENT_LENGTH"], seen["CONTENT_TYPE"]) == (str(len(body)), "application/x-bin")


def test_behind_nginx_unsized_body(server_factory, worker_class, nginx):
    srv = server_factory("apps.uwsgi_app:unsized", "--protocol", "uwsgi", worker_class=worker_class)
    response, _ = through_nginx(nginx(srv.port), "GET", "/")
    assert (response.status, response.body) == (200, b"one two")


def test_behind_nginx_peer_not_allowed(server_factory, worker_class, nginx):
    srv = server_factory(
        APP, "--protocol", "uwsgi", "--uwsgi-allow-from", "10.0.0.1", worker_class=worker_class
    )
    response, _ = through_nginx(nginx(srv.port), "GET", "/")
    assert response.status == 403


def test_keep_alive_as_gunicorn(pair, worker_class):
    """Two packets on one connection: gthread (and the async worker) answer both with
    `Connection: keep-alive` when the length is known, then close when the connection has
    been idle for --keep-alive; sync answers the first and closes."""
    ours, theirs = pair()
    answers = {}
    for name, server in (("ours", ours), ("gunicorn", theirs)):
        with socket.create_connection(server.address(), timeout=SOCKET_TIMEOUT) as sock:
            sock.sendall(packet([(b"PATH_INFO", b"/1")]) + packet([(b"PATH_INFO", b"/2")]))
            raw, _ = read_until_close(sock)
        heads = [line for line in raw.split(b"\r\n") if line.startswith(b"Connection:")]
        answers[name] = (raw.count(b"HTTP/1.1 200 OK"), heads)
    assert answers["ours"] == answers["gunicorn"]
    assert answers["ours"][0] == {"sync": 1, "async": 2}[worker_class]


def test_client_done_between_packets_is_no_error(server_factory):
    """A front end that closes its side after a packet gets its answer and a close; gunicorn
    27's gthread worker logs a traceback ("incomplete header") for the empty rest, and can
    send a 500 page after the answer."""
    srv = server_factory(APP, "--protocol", "uwsgi", worker_class="async")
    with socket.create_connection(srv.address(), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(packet([(b"PATH_INFO", b"/1")]))
        sock.shutdown(socket.SHUT_WR)
        raw, _ = read_until_close(sock)
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.startswith(b"HTTP/1.1 200 OK")
