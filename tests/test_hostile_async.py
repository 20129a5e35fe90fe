"""Regression tests for what issue 8 found in the async worker: clients that half-close, a
stop with connections still in the listen backlog, idle timeouts with threads, a full
connection table, and slow readers of big responses.

Each test is named after the bug it pins and failed before the fix. Where gunicorn has the
behaviour, it runs in the same test and its figure is reported, not asserted.
"""

import signal
import socket

import pytest
from conftest import (
    SUMMARY_LINES,
    Client,
    build_request,
    connect,
    exchange,
    parse_response,
    read_until_close,
    rss_kib,
    start_server,
    wait_for,
)

APP = "apps.cases:app"
THREADS = ["1", "4"]


def seq(i, headers=None):
    """A request to /seq, whose answer is its own query string."""
    return build_request("GET", f"/seq?i={i}", headers)


def assert_seq(response, i):
    assert response is not None, f"closed before the answer to request {i}"
    assert (response.status, response.body) == (200, f"i={i}".encode()), (i, response)


# --- bug 2: a request, then the client's FIN ----------------------------------------------------

TRIES = 50


@pytest.mark.parametrize("threads", THREADS)
def test_regression_keep_alive_request_then_fin_is_answered(server_factory, threads):
    """RFC 9112 §9.6: a half-close ends the requests, not the responses."""
    srv = server_factory(APP, "--threads", threads, worker_class="async", workers=1)
    answered = 0
    for i in range(TRIES):
        got = exchange(srv.address(), [seq(i)], half_close=True)
        if got.response is not None:
            assert_seq(got.response, i)
            answered += 1
    assert answered == TRIES, f"{answered} of {TRIES} keep-alive requests then FIN answered"


@pytest.mark.parametrize("threads", THREADS)
def test_regression_pipelined_requests_then_fin_are_all_answered(server_factory, threads):
    srv = server_factory(APP, "--threads", threads, worker_class="async", workers=1)
    for attempt in range(TRIES):
        with Client(srv.address()) as client:
            client.send(seq(2 * attempt) + seq(2 * attempt + 1))
            client.sock.shutdown(socket.SHUT_WR)
            assert_seq(client.read_response(), 2 * attempt)
            assert_seq(client.read_response(), 2 * attempt + 1)
            assert client.read_until_close() == b""


# --- bug 5: TERM with connections in the listen backlog -----------------------------------------

DRAIN_CLIENTS = 10
DRAIN_RUNS = 3
CLOSE = [("Connection", "close")]


def drain_after_term(srv, tag: str) -> int:
    """10 clients send a request to an app that sleeps 0.5 s: the first, then, once it is in
    flight (with one thread the worker is busy in the app and leaves the rest in the listen
    backlog), the other 9, then TERM. Returns how many got their whole answer."""

    def send(i):
        sock = connect(srv.address(), timeout=30)
        sock.sendall(build_request("GET", f"/sleep?s=0.5&token=drain-{tag}-{i}", CLOSE))
        return sock

    socks = []
    try:
        mark = srv.log_mark()
        socks.append(send(0))
        srv.wait_log(rf"sleep start drain-{tag}-0", since=mark)
        socks += [send(i) for i in range(1, DRAIN_CLIENTS)]
        srv.signal(signal.SIGTERM)
        answered = 0
        for sock in socks:
            raw, _ = read_until_close(sock, timeout=30)
            response = parse_response(raw) if raw else None
            if response is not None and (response.status, response.body) == (200, b"slept\n"):
                answered += 1
    finally:
        for sock in socks:
            sock.close()
    srv.wait_exit(30)
    return answered


@pytest.mark.parametrize("threads", THREADS)
def test_regression_term_serves_every_connection_in_the_backlog(threads):
    counts = []
    for run in range(DRAIN_RUNS):
        srv = start_server(APP, "--threads", threads, worker_class="async", workers=1)
        try:
            counts.append(drain_after_term(srv, f"{threads}-{run}"))
            assert srv.proc.returncode == 0, srv.stderr
        finally:
            srv.stop()
    SUMMARY_LINES.append(f"TERM drain, ferricorn async --threads {threads}: answered {counts}")
    assert counts == [DRAIN_CLIENTS] * DRAIN_RUNS, f"answered after TERM, per run: {counts}"


# --- bug 9: idle timeouts with threads, and a full connection table ----------------------------


@pytest.mark.parametrize("threads", THREADS)
def test_regression_keep_alive_setting_holds_with_threads(server_factory, threads):
    """--keep-alive 2 closes an idle connection after about 2 s (before: 30 s with threads);
    the bound here is generous, the close is what is checked."""
    srv = server_factory(
        APP, "--keep-alive", "2", "--threads", threads, worker_class="async", workers=1
    )
    with Client(srv.address()) as client:
        client.send(seq(0))
        assert_seq(client.read_response(), 0)
        assert client.read_until_close(timeout=15) == b""


@pytest.mark.parametrize("threads", THREADS)
def test_regression_full_table_closes_the_longest_idle_connection(server_factory, threads):
    """With every slot held by an idle keep-alive connection, a newcomer is served at once
    and the connection idle the longest is the one closed for it."""
    slots = 50
    srv = server_factory(
        APP,
        *("--worker-connections", str(slots), "--keep-alive", "60", "--threads", threads),
        worker_class="async",
        workers=1,
    )
    idle = [Client(srv.address(), timeout=15) for _ in range(slots)]
    try:
        for i, client in enumerate(idle):
            client.send(seq(i))
            assert_seq(client.read_response(), i)
        newcomer = Client(srv.address(), timeout=15)
        idle.append(newcomer)
        newcomer.send(seq(slots))
        assert_seq(newcomer.read_response(), slots)
        wait_for(idle[0].pending, 10, "the longest-idle connection to be closed")
        assert idle[0].read_until_close() == b""
        assert not any(c.pending() for c in idle[1:slots]), "a more recent connection was closed"
    finally:
        for client in idle:
            client.close()


# --- bug 10: slow readers of a big response -----------------------------------------------------

MIB = 1024 * 1024
# Bounds on the worker's RSS, far below one copy of the response per reader.
GROWTH_LIMIT_MIB = 64
AFTER_LIMIT_MIB = 32


def slow_readers(srv, count: int, size: int) -> list[socket.socket]:
    """``count`` clients with small receive buffers, each sent one GET for ``size`` shared
    bytes, returned once each has received the start of its answer (the worker has queued
    the response for every one of them)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(10)
        sock.connect(srv.address())
        sock.sendall(build_request("GET", f"/?n={size}"))
        socks.append(sock)
    for sock in socks:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "no answer to a slow reader"
    return socks


@pytest.mark.parametrize(
    ("threads", "count", "size"), [("1", 30, 8 * MIB), ("4", 30, 8 * MIB), ("1", 100, MIB)]
)
def test_regression_slow_readers_do_not_copy_the_response(server_factory, threads, count, size):
    """Before: each slow reader cost a copy of the whole response (30 readers of 8 MiB:
    +240 MiB), and memory stayed held after they left."""
    srv = server_factory(
        "apps.output:shared", "--threads", threads, worker_class="async", workers=1
    )
    (pid,) = srv.worker_pids()
    assert srv.get(f"/?n={size}").body == b"x" * size  # the app's bytes exist from here on
    start = rss_kib(pid) / 1024
    socks = slow_readers(srv, count, size)
    try:
        held = rss_kib(pid) / 1024
    finally:
        for sock in socks:
            sock.close()
    SUMMARY_LINES.append(
        f"{count} slow readers of {size // MIB} MiB (--threads {threads}): worker RSS"
        f" {start:.0f} -> {held:.0f} MiB"
    )
    assert held - start < GROWTH_LIMIT_MIB, f"RSS {start:.0f} -> {held:.0f} MiB"
    wait_for(
        lambda: rss_kib(pid) / 1024 - start < AFTER_LIMIT_MIB,
        10,
        f"RSS back near {start:.0f} MiB (now {rss_kib(pid) / 1024:.0f})",
    )


# --- issue 9, item 1: a streamed block goes out while the app works on the next -----------------


@pytest.mark.parametrize("threads", THREADS)
def test_regression_streamed_block_is_sent_before_the_next_is_ready(
    server_factory, tmp_path, threads
):
    """Before: blocks were held until 256 KiB had built up (or the body ended)."""
    srv = server_factory(
        "apps.output:trickle", "--threads", threads, worker_class="async", workers=1
    )
    go = tmp_path / "go"
    with connect(srv.address(), timeout=5) as sock:
        sock.sendall(build_request("GET", f"/?go={go}", [("Connection", "close")]))
        received = b""
        while b"first" not in received:  # the app holds "second" back for up to 10 s
            chunk = sock.recv(4096)
            assert chunk, f"closed before the first block: {received!r}"
            received += chunk
        go.touch()
        rest, _ = read_until_close(sock)
    response = parse_response(received + rest)
    assert (response.status, response.body) == (200, b"first\nsecond\n")
