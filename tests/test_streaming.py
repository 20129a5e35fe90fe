"""Streamed responses (issue 9, item 1): what the app hands over goes out while it works.

The apps (tests/apps/streaming.py, tests/frameworks/sse_app.py) wait for a go-ahead file
the test creates only once it has received the earlier bytes, so a server that holds data
back fails here rather than passing slowly; nothing is timed. Every test runs on the sync
worker and on the async worker with the app on the loop (``--threads 1``) and on app
threads (``-k gthread --threads 4``). The regression tests failed before ``write()`` sent
its data at once (it was held until the app returned).
"""

import socket

import pytest
from conftest import (
    Server,
    build_request,
    connect,
    decode_chunked,
    gunicorn_command,
    parse_response,
    read_until_close,
    response_end,
    wait_for,
)

GUNICORN = gunicorn_command()
# Shorter than the apps' wait for their go-ahead (10 s): data held until the app returns
# fails the test instead of arriving late.
CLIENT_TIMEOUT = 5.0
MODES = [
    pytest.param(["-k", "sync"], id="sync"),
    pytest.param(["-k", "async", "--threads", "1"], id="async-threads-1"),
    pytest.param(["-k", "gthread", "--threads", "4"], id="gthread-4"),
]


def receive_until(sock: socket.socket, marker: bytes, received: bytes = b"") -> bytes:
    """Reads until ``marker`` has arrived; the app holds everything after it back."""
    while marker not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {received!r}"
        received += chunk
    return received


def get(server_factory, mode, app, target, head="GET", version="1.1", headers=()):
    srv = server_factory(app, *mode, workers=1)
    sock = connect(srv.address(), timeout=CLIENT_TIMEOUT)
    sock.sendall(build_request(head, target, [("Connection", "close"), *headers], version=version))
    return srv, sock


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("version", "length", "framing"),
    [("1.1", False, "chunked"), ("1.1", True, "length"), ("1.0", False, "close")],
)
def test_regression_write_data_is_sent_before_the_app_returns(
    server_factory, tmp_path, mode, version, length, framing
):
    """Before: write()'s bytes waited for the app to return, on both workers."""
    go = tmp_path / "go"
    target = f"/?go={go}" + ("&length=1" if length else "")
    _, sock = get(server_factory, mode, "apps.streaming:progress", target, version=version)
    with sock:
        received = receive_until(sock, b"first\n")
        go.touch()
        rest, _ = read_until_close(sock)
    response = parse_response(received + rest)
    assert (response.status, response.body) == (200, b"first\nsecond\n")
    chunked = response.header("Transfer-Encoding") == "chunked"
    seen = "chunked" if chunked else ("length" if response.header("Content-Length") else "close")
    assert seen == framing
    if chunked:  # each write() is one chunk, and the last chunk ends the body
        assert decode_chunked((received + rest).split(b"\r\n\r\n", 1)[1]) == (
            b"first\nsecond\n",
            True,
        )


@pytest.mark.parametrize("mode", MODES)
def test_regression_write_sends_the_head_so_exc_info_reraises(server_factory, mode):
    """Before: the head waited with the data, so start_response(exc_info) after write()
    replaced the status that PEP 3333 says is already out (it must re-raise)."""
    _, sock = get(server_factory, mode, "apps.streaming:reraise", "/")
    with sock:
        raw, _ = read_until_close(sock)
    response = parse_response(raw)
    assert (response.status, response.body) == (200, b"partial\nreraised\n")


@pytest.mark.parametrize("mode", MODES)
def test_regression_write_to_a_client_that_left_raises_in_the_app(server_factory, tmp_path, mode):
    """Before: write() buffered without end (an app writing until done kept memory and
    never learnt the client had gone). Now write() raises an OSError, as on gunicorn."""
    seen = {}
    for name, command in {"ferricorn": None, "gunicorn": GUNICORN}.items():
        out = tmp_path / f"{name}.out"
        if command is None:
            srv, sock = get(server_factory, mode, "apps.streaming:until_gone", f"/?out={out}")
        else:
            args = ["--bind", "127.0.0.1:0", "--workers", "1", "apps.streaming:until_gone"]
            gthread = ["-k", "gthread", "--threads", "4"]
            srv = Server([*gthread, *args], command=command)
            try:
                srv.wait_ready()
            except BaseException:
                srv.stop()
                raise
            sock = connect(srv.address(), timeout=CLIENT_TIMEOUT)
            sock.sendall(build_request("GET", f"/?out={out}", [("Connection", "close")]))
        try:
            receive_until(sock, b"xxxx")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            sock.close()  # a reset: the next write fails at once
            seen[name] = wait_for(
                lambda out=out: out.exists() and out.read_text(), 15, "the app's result"
            )
        finally:
            srv.stop()
    assert "OSError" in seen["ferricorn"].split(), seen
    assert "OSError" in seen["gunicorn"].split(), seen


@pytest.mark.parametrize("mode", MODES)
def test_regression_write_inside_the_generator_keeps_its_place(server_factory, tmp_path, mode):
    """Before: a write() made while the generator ran went out after the item it yielded
    next (and only once the app was done)."""
    go = tmp_path / "go"
    _, sock = get(server_factory, mode, "apps.streaming:write_in_generator", f"/?go={go}")
    with sock:
        received = receive_until(sock, b"two\n")
        go.touch()
        rest, _ = read_until_close(sock)
    response = parse_response(received + rest)
    assert (response.status, response.body) == (200, b"one\ntwo\nthree\n")


@pytest.mark.parametrize("mode", MODES)
def test_head_request_with_write_sends_the_head_only(server_factory, tmp_path, mode):
    go = tmp_path / "go"
    go.touch()
    _, sock = get(server_factory, mode, "apps.streaming:progress", f"/?go={go}", head="HEAD")
    with sock:
        raw, _ = read_until_close(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n"), raw


@pytest.mark.parametrize("mode", MODES)
def test_sse_event_arrives_before_the_next_is_yielded(server_factory, tmp_path, mode):
    """A Flask SSE generator: the client has event i before the app yields event i + 1."""
    events = 4
    target = f"/events?n={events}&go={tmp_path}"
    _, sock = get(server_factory, mode, "frameworks.sse_app:app", target)
    received = b""
    with sock:
        for i in range(events):
            received = receive_until(sock, f"id: {i}\n".encode(), received)
            assert f"id: {i + 1}\n".encode() not in received  # not yielded yet
            (tmp_path / str(i)).touch()
        rest, _ = read_until_close(sock)
    response = parse_response(received + rest)
    assert response.status == 200
    assert response.header("Content-Type").startswith("text/event-stream")
    ids = [line for line in response.body.split(b"\n") if line.startswith(b"id: ")]
    assert ids == [f"id: {i}".encode() for i in range(events)]


@pytest.mark.parametrize("mode", MODES[1:])
def test_pipelined_write_waits_for_the_response_queued_before_it(server_factory, tmp_path, mode):
    """The first response's last chunk is still queued when the second request's app
    writes: its data goes out after it, never inside it."""
    go = tmp_path / "go"
    go.touch()
    srv = server_factory("apps.streaming:progress", *mode, workers=1)
    with connect(srv.address(), timeout=CLIENT_TIMEOUT) as sock:
        first = build_request("GET", f"/?go={go}")
        sock.sendall(first + build_request("GET", f"/?go={go}", [("Connection", "close")]))
        raw, _ = read_until_close(sock)
    end = response_end(raw)
    assert end is not None, raw
    for part in (raw[:end], raw[end:]):
        response = parse_response(part)
        assert (response.status, response.body) == (200, b"first\nsecond\n"), raw
