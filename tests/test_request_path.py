"""One request path: the sync and async workers start a request, report an app error
and answer it as gunicorn's sync worker does, and serve a request with no descriptor
beyond the connection's own (nothing is duplicated for ``wsgi.input``).

Each test runs gunicorn 27 on the same app, in the same test, as the reference.
"""

import os

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    connect,
    gunicorn_command,
    parse_response,
    read_until_close,
    start_server,
    wait_for,
)

APP = "apps.request_path:app"
SERVERS = ["gunicorn", "sync", "async"]


def start(kind: str, *extra: str):
    if kind == "gunicorn":
        return start_server(APP, "--no-control-socket", *extra, command=gunicorn_command())
    return start_server(APP, *extra, worker_class=kind)


@pytest.fixture
def servers():
    """Starts each kind of server once for the test; stops them all after."""
    started = {}

    def get(kind: str):
        if kind not in started:
            started[kind] = start(kind)
        return started[kind]

    yield get
    for server in started.values():
        server.stop()


def ask(server, raw: bytes):
    """One request on a fresh connection, read until the server closes it."""
    with connect(server.address()) as sock:
        try:
            sock.sendall(raw)
        except OSError:
            pass  # the server closed early: what it sent, if anything, is still read
        data, _ = read_until_close(sock, SOCKET_TIMEOUT)
    return parse_response(data)


def page_text(body: bytes) -> bytes:
    """An error page without its blank lines: gunicorn's has one where its (empty)
    description goes, which ours leaves out (the page's encoder is the HTTP crate's)."""
    return b"\n".join(line for line in body.split(b"\n") if line.strip())


def test_app_error_before_headers_is_answered_as_gunicorn_does(servers):
    """The app raises before start_response: every server sends the same 500 page with
    ``Connection: close`` and logs "Error handling request" with the traceback."""
    answers = {}
    for kind in SERVERS:
        server = servers(kind)
        mark = server.log_mark()
        token = f"tok-{kind}"
        response = ask(server, f"GET /raise?{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert response is not None, f"{kind}: no response"
        server.wait_log(r"Error handling request", since=mark)
        server.wait_log(rf"RuntimeError: boom before headers {token}", since=mark)
        server.wait_log(r"Traceback \(most recent call last\)", since=mark)
        answers[kind] = (
            response.status,
            response.reason,
            response.header("Content-Type"),
            (response.header("Connection") or "").lower(),
            page_text(response.body),
        )
    assert answers["sync"] == answers["gunicorn"]
    assert answers["async"] == answers["gunicorn"]
    assert answers["gunicorn"][0] == 500


def squeeze(server) -> None:
    """Leaves the (one) worker one descriptor to open, the squeezing request's socket's,
    and waits until that connection has closed."""
    (worker,) = server.worker_pids()
    response = ask(server, b"GET /squeeze HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response is not None and response.status == 200, response
    fd = int(response.body)
    wait_for(
        lambda: not os.path.lexists(f"/proc/{worker}/fd/{fd}"),
        SOCKET_TIMEOUT,
        "the squeezing connection to close",
    )


@pytest.mark.parametrize("kind", SERVERS)
def test_regression_duplicated_descriptor_fails_requests_at_the_descriptor_limit(kind):
    """The sync worker duplicated every connection's descriptor for ``wsgi.input``, and the
    async worker did so for a streamed body: with one descriptor left, accept took it, the
    duplicate failed (EMFILE), and the client got no answer at all. gunicorn answers; so do
    both workers now that the transport is shared, not duplicated."""
    server = start(kind)
    try:
        squeeze(server)
        # A body over the async worker's buffer: it streams to wsgi.input from a thread.
        size = (1 << 20) + 1
        head = f"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
        raw = (head + "Connection: close\r\n\r\n").encode() + b"x" * size
        response = ask(server, raw)
        assert response is not None, f"{kind}: no answer at the descriptor limit"
        assert (response.status, response.body) == (200, b"read %d" % size)
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_connection_is_one_descriptor_while_its_body_streams(kind):
    """While the app reads a streamed body, the worker holds one descriptor for the
    connection: none is duplicated for wsgi.input."""
    server = start(kind)
    try:
        size = 2_000_000
        with connect(server.address()) as sock:
            head = f"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
            sock.sendall((head + "Connection: close\r\n\r\n").encode() + b"x" * size)
            data, _ = read_until_close(sock, SOCKET_TIMEOUT)
        response = parse_response(data)
        assert response is not None and response.status == 200, data
        assert response.body == b"fds 1 read %d" % size
    finally:
        server.stop()
