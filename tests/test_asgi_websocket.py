"""The asgi worker's ``websocket`` scope end to end, each case beside gunicorn 27's
``-k asgi`` in the same test: the ``websockets`` client, and raw frames over a socket for
what no well-behaved client sends. Apps: tests/apps/ws_asgi.py.

Where ferricorn and gunicorn 27 differ on purpose (a graceful stop's 1001), the test says
so and checks each; docs/differences.md lists it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import struct
import threading

import pytest
import requests
from conftest import SOCKET_TIMEOUT, Server, wait_for
from test_asgi import PEERS, serve
from test_asgi import peer as peer  # the fixtures: ferricorn and gunicorn 27, -k asgi
from test_asgi import servers as servers
from test_tls import certs as certs  # the fixture
from test_tls import client_context, tls_args

websockets = pytest.importorskip("websockets", reason="requirements-dev.txt installs websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

APP = "apps.ws_asgi:app"
MB = 1024 * 1024
KEY = base64.b64encode(b"0123456789abcdef").decode()


@pytest.fixture(scope="module")
def shared():
    """One server per peer for the tests that need nothing of their own."""
    running: dict[str, Server] = {}

    def get(peer: str) -> Server:
        if peer not in running:
            running[peer] = serve(peer, APP)
        return running[peer]

    yield get
    for server in running.values():
        server.stop()


def url(server: Server, path: str, scheme: str = "ws") -> str:
    host, port = server.address()
    return f"{scheme}://{host}:{port}{path}"


def ws(server: Server, path: str = "/", **kwargs):
    return connect(url(server, path), open_timeout=SOCKET_TIMEOUT, close_timeout=5, **kwargs)


def closed_code(conn) -> tuple[int | None, str]:
    """Reads until the server closes; its close frame's code and reason (None: no frame)."""
    try:
        while True:
            conn.recv(timeout=SOCKET_TIMEOUT)
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            return None, ""
        return closed.rcvd.code, closed.rcvd.reason


# --- raw frames ----------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 section 5.2), masked unless asked not to."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Raw:
    """A WebSocket spoken by hand over a socket."""

    def __init__(self, server: Server, path: str = "/", headers: str | None = None, tls=None):
        self.sock = socket.create_connection(server.address(), timeout=SOCKET_TIMEOUT)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        if headers is None:
            headers = f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"{headers}\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""

    def head(self) -> tuple[int, bytes]:
        """The response's status and head."""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                break
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), head

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"closed with {len(self.buf)} of {n} bytes")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._need(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._need(8))
        return b0 & 0x0F, self._need(n)

    def close_code(self) -> int:
        """Reads frames until the server's close; its code."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if payload else 1005

    def close(self):
        self.sock.close()


# --- the cases -----------------------------------------------------------------------------


def test_echo_text_and_binary(shared, peer):
    with ws(shared(peer), "/echo") as conn:
        conn.send("héllo")
        assert conn.recv(timeout=SOCKET_TIMEOUT) == "héllo"
        conn.send(b"\x00\x01binary")
        assert conn.recv(timeout=SOCKET_TIMEOUT) == b"\x00\x01binary"


def test_1mb_messages_both_ways(shared, peer):
    data = os.urandom(MB)
    text = "é" * (MB // 2)
    with ws(shared(peer), "/echo", max_size=4 * MB) as conn:
        conn.send(data)
        assert conn.recv(timeout=SOCKET_TIMEOUT) == data
        conn.send(text)
        assert conn.recv(timeout=SOCKET_TIMEOUT) == text


def test_fragmented_message_is_one_message_and_pings_between_are_answered(shared, peer):
    raw = Raw(shared(peer), "/echo")
    assert raw.head()[0] == 101
    raw.sock.sendall(
        frame(1, b"frag", fin=False)
        + frame(9, b"ping!")
        + frame(0, b"ment", fin=False)
        + frame(0, b"ed")
    )
    assert raw.read_frame() == (10, b"ping!")
    assert raw.read_frame() == (1, b"fragmented")
    raw.close()


def test_ping_gets_a_pong(shared, peer):
    with ws(shared(peer), "/echo") as conn:
        assert conn.ping(b"are you there").wait(SOCKET_TIMEOUT)


def test_client_close_code_reaches_the_app_and_is_echoed(servers, peer, tmp_path):
    log = tmp_path / "ws.log"
    server = servers(peer, APP, env={"WS_LOG": str(log)})
    with ws(server, "/echo") as conn:
        conn.close(4000, "bye")
        assert conn.protocol.close_rcvd is not None and conn.protocol.close_rcvd.code == 4000
    wait_for(lambda: log.exists() and " /echo 4000" in log.read_text(), SOCKET_TIMEOUT, "app")


def test_app_close_code_and_reason_reach_the_client(shared, peer):
    with ws(shared(peer), "/close") as conn:
        conn.send("4001 going home")
        assert closed_code(conn) == (4001, "going home")


def test_close_before_accept_is_a_403(shared, peer):
    with pytest.raises(InvalidStatus) as refused:
        ws(shared(peer), "/deny")
    assert refused.value.response.status_code == 403


def test_app_raising_before_accept_is_a_500(shared, peer):
    server = shared(peer)
    with pytest.raises(InvalidStatus) as refused:
        ws(server, "/boom-before")
    assert refused.value.response.status_code == 500
    server.wait_log(r"Error in WebSocket ASGI application")


def test_app_returning_before_accept_is_a_403(shared, peer):
    with pytest.raises(InvalidStatus) as refused:
        ws(shared(peer), "/return-before")
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("path", ["/boom-after", "/return-after"])
def test_app_ending_after_accept_closes_with_1011(shared, peer, path):
    with ws(shared(peer), path) as conn:
        assert closed_code(conn)[0] == 1011


def test_subprotocol_and_extra_headers(shared, peer):
    with ws(shared(peer), "/headers", subprotocols=["chat", "superchat"]) as conn:
        assert conn.subprotocol == "superchat"
        assert conn.response.headers["x-ws"] == "yes"


def test_scope(shared, peer):
    with ws(shared(peer), "/scope?x=1", subprotocols=["a", "b"]) as conn:
        scope = json.loads(conn.recv(timeout=SOCKET_TIMEOUT))
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert (scope["path"], scope["query_string"]) == ("/scope", "x=1")
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["http_version"] == "1.1"
    assert "sec-websocket-key" in scope["headers"]


def test_the_same_scope_as_gunicorn(shared):
    seen = []
    for name in PEERS:
        with ws(shared(name), "/scope?x=1", subprotocols=["a", "b"]) as conn:
            seen.append(json.loads(conn.recv(timeout=SOCKET_TIMEOUT)))
    assert seen[0] == seen[1]


@pytest.mark.parametrize(
    "headers,status",
    [
        (f"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n", 426),
        ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n", 400),
        ("Sec-WebSocket-Version: 13\r\n", 400),
    ],
    ids=["version-8", "bad-key", "no-key"],
)
def test_a_bad_handshake_is_refused_as_gunicorn_refuses_it(shared, peer, headers, status):
    raw = Raw(shared(peer), "/echo", headers=headers)
    got, head = raw.head()
    raw.close()
    assert got == status
    if status == 426:
        assert b"sec-websocket-version: 13" in head.lower()


@pytest.mark.parametrize(
    "bad,code",
    [
        (frame(1, b"\xff\xfe"), 1007),
        (frame(1, b"unmasked", mask=False), 1002),
        (frame(1, b"rsv", rsv=4), 1002),
        (frame(3, b"reserved opcode"), 1002),
        (frame(9, b"x" * 126), 1002),
        (frame(0, b"continuation of nothing"), 1002),
        (frame(8, b"\x03\xe8\xff"), 1007),
        (frame(8, b"\x03\xed"), 1002),
    ],
    ids=[
        "bad-utf8",
        "unmasked",
        "rsv",
        "opcode",
        "long-ping",
        "stray-cont",
        "close-utf8",
        "close-1005",
    ],
)
def test_a_protocol_error_closes_with_its_code(shared, peer, bad, code):
    raw = Raw(shared(peer), "/echo")
    assert raw.head()[0] == 101
    raw.sock.sendall(bad)
    assert raw.close_code() == code
    raw.close()


def test_a_message_over_the_limit_closes_with_1009(servers, peer):
    server = servers(peer, APP, "--websocket-max-message-size", "1000")
    with ws(server, "/echo") as conn:
        conn.send("x" * 1000)
        assert conn.recv(timeout=SOCKET_TIMEOUT) == "x" * 1000
        conn.send("x" * 1001)
        assert closed_code(conn)[0] == 1009


def test_a_fragmented_message_over_the_limit_closes_with_1009(servers, peer):
    raw = Raw(servers(peer, APP, "--websocket-max-message-size", "1000"), "/echo")
    assert raw.head()[0] == 101
    raw.sock.sendall(frame(2, b"x" * 600, fin=False) + frame(0, b"x" * 600))
    assert raw.close_code() == 1009
    raw.close()


def test_a_lost_client_is_1006_for_the_app(servers, peer, tmp_path):
    log = tmp_path / "ws.log"
    server = servers(peer, APP, env={"WS_LOG": str(log)})
    raw = Raw(server, "/echo")
    assert raw.head()[0] == 101
    raw.close()
    wait_for(lambda: log.exists() and " /echo 1006" in log.read_text(), SOCKET_TIMEOUT, "app")


def test_a_hundred_sockets_on_one_worker(shared, peer):
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(ws(shared(peer), "/echo")) for _ in range(100)]
        for i, conn in enumerate(conns):
            conn.send(f"m{i}")
        assert [c.recv(timeout=SOCKET_TIMEOUT) for c in conns] == [f"m{i}" for i in range(100)]


def test_a_slow_reader_gets_every_message(shared, peer):
    """The app floods 2,000 messages of 1 KB; the client reads them late: none is lost,
    and the app was made to wait (the server's queue is bounded) rather than buffer all."""
    with ws(shared(peer), "/flood?2000") as conn:
        threading.Event().wait(0.5)  # the reader is slow on purpose, not waiting for a state
        got = [conn.recv(timeout=SOCKET_TIMEOUT)[:6] for _ in range(2000)]
    assert got == [f"{i:06d}" for i in range(2000)]


def test_wss_over_tls(request, servers, peer, certs):
    """Spoken by hand over an ``ssl`` socket, every read bounded: the ``websockets``
    client, when a TLS handshake timed out, once waited 13 minutes joining its reader."""
    if peer == "gunicorn":
        # Seen once, in a CI run of 2026-12-03 on a loaded machine; passes otherwise.
        reason = "gunicorn 27 -k asgi over TLS once sent no 101 within 10 s"
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    server = servers(peer, APP, *tls_args(certs))
    raw = Raw(server, "/scope", tls=client_context(certs))
    assert raw.head()[0] == 101
    opcode, payload = raw.read_frame()
    assert opcode == 1 and json.loads(payload)["scheme"] == "wss"
    raw.sock.sendall(frame(1, b"over tls"))
    assert raw.read_frame() == (1, b"over tls")
    raw.close()


def test_plain_http_beside_websockets(shared, peer):
    host, port = shared(peer).address()
    assert requests.get(f"http://{host}:{port}/", timeout=SOCKET_TIMEOUT).text == "plain http"


def test_graceful_stop_closes_websockets_with_1001(servers, peer):
    """ferricorn: TERM sends each open WebSocket 1001 "going away" at once, then the worker
    exits when the clients answer. gunicorn 27 sends no close frame: the sockets stay open
    through --graceful-timeout and are then dropped (docs/differences.md)."""
    server = servers(peer, APP, "--graceful-timeout", "3")
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(ws(server, "/echo")) for _ in range(3)]
        for conn in conns:
            conn.send("open")
            assert conn.recv(timeout=SOCKET_TIMEOUT) == "open"
        server.signal(signal.SIGTERM)
        codes = [closed_code(conn)[0] for conn in conns]
    if peer == "ferricorn":
        assert codes == [1001] * 3
    else:
        assert all(code != 1001 for code in codes), codes


def test_the_access_log_has_a_101_line_per_websocket(servers, tmp_path):
    log = tmp_path / "access.log"
    server = servers("ferricorn", APP, "--access-logfile", str(log))
    with ws(server, "/echo?a=1") as conn:
        conn.send("x")
        conn.recv(timeout=SOCKET_TIMEOUT)
    with pytest.raises(InvalidStatus):
        ws(server, "/deny")
    wait_for(lambda: log.exists() and log.read_text().count("\n") >= 2, SOCKET_TIMEOUT, "lines")
    lines = log.read_text().splitlines()
    assert '"GET /echo?a=1 HTTP/1.1" 101' in lines[0], lines
    assert '"GET /deny HTTP/1.1" 403' in lines[1], lines
