"""The async worker (``-k async``): keep-alive, pipelining, slow peers, limits, threads, stop.

What both worker classes share (the WSGI contract, framing, big bodies, the corpus) runs on
both in the other files; this file holds what only the async worker does. Tests that need a
worker of their own (one worker, so that a blocked loop would show) start it themselves.
"""

import hashlib
import json
import select
import signal
import threading
import time
from urllib.parse import quote

import pytest
from apps import pattern, pattern_chunks
from conftest import (
    CLOSE_DELIMITED,
    SUMMARY_LINES,
    Client,
    build_request,
    chunked,
    connect,
    connection_after,
    connection_tokens,
    parse_response,
    response_end,
    running,
    wait_for,
)

APP = "apps.cases:app"
PROMPT = 5.0  # a generous bound for "answered promptly" while the worker is busy elsewhere
BIG = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def server():
    with running(APP, workers=2, worker_class="async") as srv:
        yield srv


def seq(i, headers=None, version="1.1"):
    """A request to /seq, whose answer is its own query string."""
    return build_request("GET", f"/seq?i={i}", headers, version=version)


def assert_seq(response, i):
    assert response is not None, f"closed before the answer to request {i}"
    assert (response.status, response.body) == (200, f"i={i}".encode()), (i, response)


def timed_get(srv, target, bound=PROMPT):
    started = time.monotonic()
    response = srv.get(target, timeout=bound)
    took = time.monotonic() - started
    assert response is not None and response.status == 200, response
    assert took < bound, f"{target} took {took:.2f}s"
    return took


# --- flags ------------------------------------------------------------------------------------


def test_gthread_is_the_async_worker(server_factory):
    srv = server_factory(APP, "-k", "gthread")
    with Client(srv.address()) as client:
        for i in range(3):
            client.send(seq(i))
            assert_seq(client.read_response(), i)


# --- when the connection persists -------------------------------------------------------------

SMALL = b"s" * 10
HALF_MIB = pattern(512 * 1024, seed=3)


def _connection(token):
    return [("Connection", token)] if token else []


def get(target, connection=None, version="1.1"):
    return build_request("GET", target, _connection(connection), version=version)


def post(target, body, connection=None, version="1.1"):
    return build_request("POST", target, _connection(connection), body, version)


# request -> what the connection does after the answer (see conftest.connection_after)
PERSISTENCE = {
    "http11-default": (get("/hello"), "reused"),
    "http11-keep-alive": (get("/hello", "keep-alive"), "reused"),
    "http11-connection-close": (get("/hello", "close"), "closed"),
    "http11-close-mixed-case": (get("/hello", "Close"), "closed"),
    "http11-close-in-token-list": (get("/hello", "x-foo, close"), "closed"),
    "http10-default": (get("/hello", version="1.0"), "closed"),
    "http10-keep-alive": (get("/hello", "keep-alive", "1.0"), "reused"),
    "http10-keep-alive-mixed-case": (get("/hello", "Keep-Alive", "1.0"), "reused"),
    # No Content-Length from the app and no chunked on 1.0: only the close ends the body.
    "http10-keep-alive-close-delimited": (get("/stream?n=3", "keep-alive", "1.0"), "closed"),
    "http11-streamed-is-chunked": (get("/stream?n=3"), "reused"),
    "http11-body-read": (post("/sha256", SMALL), "reused"),
    # A body that arrived whole, under 1 MiB, is skipped by the server if the app ignores it.
    "http11-small-body-ignored": (post("/continue?read=0", SMALL), "reused"),
    "http11-512k-body-ignored": (post("/continue?read=0", HALF_MIB), "reused"),
    "http11-chunked-body-ignored": (
        build_request("POST", "/continue?read=0", [("Transfer-Encoding", "chunked")])
        + chunked(b"hello ", b"world"),
        "reused",
    ),
    "http10-keep-alive-body-ignored": (
        post("/continue?read=0", SMALL, "keep-alive", "1.0"),
        "reused",
    ),
}


@pytest.mark.parametrize("case", PERSISTENCE)
def test_persistence(server, case):
    raw, expected = PERSISTENCE[case]
    with Client(server.address()) as client:
        client.send(raw)
        response = client.read_response()
        assert response is not None and response.status == 200, response
        assert response.complete
        tokens = connection_tokens(response)
        assert connection_after(client, response) == expected, response.headers
    if expected == "closed":
        assert "close" in tokens, response.headers
    else:
        assert "close" not in tokens, response.headers
    if expected == "reused" and b"HTTP/1.0" in raw.split(b"\r\n", 1)[0]:
        assert response.header_all("Connection") == ["keep-alive"], response.headers


def test_sequential_requests_share_one_connection(server):
    with Client(server.address()) as client:
        port = client.sock.getsockname()[1]
        for i in range(20):
            client.send(seq(i))
            assert_seq(client.read_response(), i)
        client.send(build_request("GET", "/environ"))
        environ = json.loads(client.read_response().body)["str"]
        assert environ["REMOTE_PORT"] == str(port)
        assert not client.closed


def test_large_unread_body_closes_the_connection(server):
    """The app ignores a body that has not all arrived: skipping it would mean reading
    megabytes for nothing, so the server answers and closes."""
    size = 8 * 1024 * 1024
    head = build_request("POST", "/continue?read=0", [("Content-Length", str(size))])
    with Client(server.address()) as client:
        client.send(head + pattern(2 * 1024 * 1024, seed=4))
        response = client.read_response()
        assert response is not None, "closed (or reset) without an answer"
        assert (response.status, response.body) == (200, b"(not read)"), response
        assert "close" in connection_tokens(response), response.headers
        client.read_until_close()


def test_large_body_read_by_the_app_keeps_the_connection(server):
    body = pattern(3 * 1024 * 1024, seed=5)
    with Client(server.address()) as client:
        client.send(build_request("POST", "/sha256", body=body))
        response = client.read_response()
        assert json.loads(response.body) == {
            "sha256": hashlib.sha256(body).hexdigest(),
            "length": len(body),
        }
        assert connection_after(client, response) == "reused"


def test_expect_100_continue_twice_on_one_connection(server):
    """The 100 Continue is per request: the second request on the connection gets its own."""
    head = build_request(
        "POST", "/continue?read=1", [("Expect", "100-continue"), ("Content-Length", "5")]
    )
    with Client(server.address()) as client:
        for body in (b"first", b"again"):
            client.send(head)
            wait_for(client.pending, PROMPT, "the 100 Continue")
            client.send(body)
            response = client.read_response()
            assert response.interim == [100], response
            assert (response.status, response.body) == (200, body)
        assert connection_after(client, response) == "reused"


# --- pipelining -------------------------------------------------------------------------------


def test_10000_pipelined_requests_answered_in_order(server):
    total, batch = 10_000, 500
    with Client(server.address(), timeout=30) as client:
        failures = []

        def send_all():
            for start in range(0, total, batch):
                if not client.send(b"".join(seq(i) for i in range(start, start + batch))):
                    failures.append(f"send failed at batch {start}")
                    return

        sender = threading.Thread(target=send_all, daemon=True)
        started = time.monotonic()
        sender.start()
        try:
            for i in range(total):
                assert_seq(client.read_response(), i)
        finally:
            sender.join(30)
        elapsed = time.monotonic() - started
        assert failures == []
        assert not client.closed
    SUMMARY_LINES.append(f"async: {total} pipelined GETs on one connection in {elapsed:.2f}s")


def test_pipelined_mixed_requests_answered_in_order(server):
    upload = pattern(100_000, seed=6)
    requests = [
        (seq(0), lambda r: r.body == b"i=0"),
        (
            build_request("POST", "/sha256", body=upload),
            lambda r: json.loads(r.body)["sha256"] == hashlib.sha256(upload).hexdigest(),
        ),
        (
            build_request("POST", "/validated", [("Transfer-Encoding", "chunked")])
            + chunked(b"chunked ", b"body"),
            lambda r: json.loads(r.body)["body_hex"] == b"chunked body".hex(),
        ),
        (build_request("HEAD", "/head"), lambda r: r.raw_body == b""),
        (
            build_request("POST", "/validated", [("Transfer-Encoding", "chunked")])
            + b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n",
            lambda r: json.loads(r.body)["body_hex"] == b"abc".hex(),
        ),
        (
            build_request("GET", "/stream?n=3"),
            lambda r: r.body == b"part 0\npart 1\npart 2\n",
        ),
        (build_request("GET", "/status?code=204"), lambda r: r.status == 204),
        (build_request("POST", "/continue?read=0", body=SMALL), lambda r: r.status == 200),
        (build_request("GET", "/status?code=304"), lambda r: r.status == 304),
        (build_request("GET", "/write"), lambda r: r.body == b"from write, then iterable"),
        (seq(9), lambda r: r.body == b"i=9"),
    ]
    with Client(server.address()) as client:
        client.send(b"".join(raw for raw, _ in requests))
        for index, (raw, check) in enumerate(requests):
            response = client.read_response(head_request=raw.startswith(b"HEAD"))
            assert response is not None and response.complete, (index, response)
            assert check(response), (index, response)
        assert connection_after(client, response) == "reused"


@pytest.mark.parametrize("target", ["/head", "/stream?n=3", "/download?n=100000"])
def test_head_sends_no_body_and_keeps_the_connection(server, target):
    """No body after a HEAD's headers, not even chunked framing, whatever the app returned."""
    with Client(server.address()) as client:
        client.send(build_request("HEAD", target))
        response = client.read_response(head_request=True)
        assert response.status == 200
        assert connection_after(client, response) == "reused"


def test_pipelined_request_with_connection_close_ends_the_pipeline(server):
    raw = seq(0) + seq(1, [("Connection", "close")]) + seq(2)
    with Client(server.address()) as client:
        client.send(raw)
        assert_seq(client.read_response(), 0)
        last = client.read_response()
        assert_seq(last, 1)
        assert "close" in connection_tokens(last)
        assert client.read_until_close() == b"", "answered past Connection: close"


def test_malformed_request_in_a_pipeline_is_400_and_close(server):
    raw = seq(0) + seq(1) + b"GARBAGE\r\n\r\n" + seq(3)
    with Client(server.address()) as client:
        client.send(raw)
        assert_seq(client.read_response(), 0)
        assert_seq(client.read_response(), 1)
        error = client.read_response()
        assert error is not None and error.status == 400, error
        assert error.header_all("Connection") == ["close"]
        assert client.read_until_close() == b"", "answered past a malformed request"


def test_pipelined_requests_sent_byte_by_byte(server):
    raw = seq(0) + build_request("POST", "/sha256", body=b"abc") + seq(2)
    with Client(server.address()) as client:
        for i in range(len(raw)):
            client.send(raw[i : i + 1])
        assert_seq(client.read_response(), 0)
        assert json.loads(client.read_response().body)["length"] == 3
        assert_seq(client.read_response(), 2)


# --- keep-alive timeout -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keepalive_1s():
    with running(APP, "--keep-alive", "1", worker_class="async") as srv:
        yield srv


def _idle_until_closed(srv):
    """Seconds from an answer until the server closes the idle connection."""
    with Client(srv.address()) as client:
        client.send(seq(0))
        assert_seq(client.read_response(), 0)
        answered = time.monotonic()
        assert client.read_until_close(timeout=8) == b""
        return time.monotonic() - answered


def test_idle_connection_closed_after_keep_alive_seconds(keepalive_1s):
    idle = _idle_until_closed(keepalive_1s)
    assert 0.5 <= idle < 4, f"closed after {idle:.2f}s idle with --keep-alive 1"


def test_keep_alive_defaults_to_2_seconds(server):
    idle = _idle_until_closed(server)
    assert 1.5 <= idle < 5, f"closed after {idle:.2f}s idle with the default --keep-alive"


def test_busy_connection_outlives_keep_alive_seconds(keepalive_1s):
    """The timeout is for idle time, not the connection's age, nor time spent in the app."""
    with Client(keepalive_1s.address()) as client:
        started = time.monotonic()
        for i in range(4):
            client.send(seq(i))
            assert_seq(client.read_response(), i)
            time.sleep(0.6)  # pacing: requests 0.6 s apart, well under the 1 s idle limit
        client.send(build_request("GET", "/sleep?s=1.5"))
        response = client.read_response()
        assert (response.status, response.body) == (200, b"slept\n")
        assert time.monotonic() - started > 1.5
        client.send(seq(5))
        assert_seq(client.read_response(), 5)


def test_slow_upload_is_not_cut_by_keep_alive(keepalive_1s):
    """A request still arriving is not an idle connection, however long it takes."""
    pieces = [pattern(1000, seed=i) for i in range(5)]
    body = b"".join(pieces)
    with Client(keepalive_1s.address()) as client:
        client.send(build_request("POST", "/sha256", [("Content-Length", str(len(body)))]))
        for piece in pieces:
            time.sleep(0.5)  # pacing: the body takes 2.5 s to arrive, past the 1 s limit
            assert client.send(piece)
        response = client.read_response()
        assert response is not None, "cut off while the body was arriving"
        assert json.loads(response.body)["sha256"] == hashlib.sha256(body).hexdigest()


def test_slow_download_is_not_cut_by_keep_alive(keepalive_1s):
    """A response still being sent is not an idle connection either: a reader slower than
    the server (at most 128 KiB per 30 ms) takes about 2 s over it, past the 1 s limit."""
    size = 8 * 1024 * 1024
    expected = hashlib.sha256(pattern(size)).hexdigest()
    received = bytearray()
    with connect(keepalive_1s.address(), timeout=30) as sock:
        sock.sendall(build_request("GET", f"/download?n={size}"))
        started = time.monotonic()
        while response_end(received) in (None, CLOSE_DELIMITED):
            chunk = sock.recv(128 * 1024)
            if not chunk:
                break
            received += chunk
            time.sleep(0.03)  # pacing: the slow reader
    took = time.monotonic() - started
    response = parse_response(bytes(received))
    assert took > 1.5, f"the download took {took:.2f}s: too quick to test the timer"
    assert response.complete, f"cut off after {len(response.raw_body)} of {size} bytes"
    assert hashlib.sha256(response.body).hexdigest() == expected


# --- slow peers on one worker -----------------------------------------------------------------


@pytest.fixture
def one_worker(server_factory):
    return server_factory(APP, worker_class="async", workers=1)


def test_300_slow_clients_do_not_hold_the_worker(one_worker):
    """Heads that trickle in a byte a second are buffered by the loop; the app is only called
    once a head is whole, so a normal client is still answered at once."""
    count, rounds = 300, 6
    heads = [build_request("GET", f"/seq?i={i}") for i in range(count)]
    slow = [Client(one_worker.address()) for _ in range(count)]
    failures = []

    def drip():
        for n in range(rounds):
            for i, client in enumerate(slow):
                if not client.send(heads[i][n : n + 1]):
                    failures.append(f"slow client {i} cut off after {n} bytes")
            if n < rounds - 1:
                time.sleep(1.0)  # pacing: one byte a second

    dripper = threading.Thread(target=drip)
    took = []
    try:
        dripper.start()
        while dripper.is_alive():
            took.append(timed_get(one_worker, "/hello"))
            time.sleep(0.3)  # pacing between the normal client's requests
        dripper.join()
        assert failures == []
        assert len(took) >= 5, took
        early = [i for i, client in enumerate(slow) if client.pending()]
        assert early == [], f"slow clients answered or closed before their head was whole: {early}"
        for i, client in enumerate(slow):
            client.send(heads[i][rounds:])
        for i, client in enumerate(slow):
            assert_seq(client.read_response(), i)
    finally:
        dripper.join()
        for client in slow:
            client.close()
    SUMMARY_LINES.append(
        f"async, 1 worker, {count} slow clients: {len(took)} normal requests, "
        f"slowest {max(took) * 1000:.0f} ms"
    )


def test_stalled_partial_head_does_not_block_others(one_worker):
    with Client(one_worker.address()) as stalled:
        stalled.send(b"GET /seq?i=7 HT")
        for _ in range(3):
            timed_get(one_worker, "/hello")
        assert not stalled.pending()
        stalled.send(b"TP/1.1\r\nHost: x\r\n\r\n")
        assert_seq(stalled.read_response(), 7)


def test_stalled_partial_body_does_not_block_others(one_worker):
    """A body under 1 MiB is buffered before the app runs, so a client that stops halfway
    through it does not hold the worker."""
    body = pattern(300_000, seed=11)
    head = build_request("POST", "/sha256", [("Content-Length", str(len(body)))])
    with Client(one_worker.address()) as stalled:
        stalled.send(head + body[:100_000])
        for _ in range(3):
            timed_get(one_worker, "/hello")
        assert not stalled.pending()
        stalled.send(body[100_000:])
        response = stalled.read_response()
        assert json.loads(response.body) == {
            "sha256": hashlib.sha256(body).hexdigest(),
            "length": len(body),
        }


@pytest.mark.parametrize("source", ["generator", "sendfile"])
def test_slow_reader_does_not_block_others(one_worker, tmp_path, source):
    """A client that does not read a 50 MB response leaves the worker free for others; when
    it reads at last, the response is whole."""
    expected = hashlib.sha256()
    if source == "generator":
        target = f"/download?n={BIG}"
        for piece in pattern_chunks(BIG):
            expected.update(piece)
    else:
        path = tmp_path / "big.bin"
        with path.open("wb") as out:
            for piece in pattern_chunks(BIG, seed=12):
                expected.update(piece)
                out.write(piece)
        target = f"/file?path={quote(str(path))}"
    with Client(one_worker.address(), timeout=60) as slow:
        slow.send(build_request("GET", target))
        wait_for(slow.pending, PROMPT, "the start of the big response")
        for _ in range(3):
            timed_get(one_worker, "/hello")
        response = slow.read_response()
    assert response.status == 200
    assert response.complete
    assert len(response.body) == BIG
    assert hashlib.sha256(response.body).hexdigest() == expected.hexdigest()


# --- limits and threads -----------------------------------------------------------------------


def _answered(clients, want, timeout):
    """Reads a response from each of the first ``want`` clients to become readable."""
    pending = {client.sock: client for client in clients}
    done = []
    deadline = time.monotonic() + timeout
    while len(done) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(done)} of {want} connections answered in {timeout:g}s"
        readable, _, _ = select.select(list(pending), [], [], left)
        for sock in readable:
            client = pending.pop(sock)
            response = client.read_response()
            assert response is not None and response.status == 200, response
            done.append(client)
    return done


def test_worker_connections_limit_queues_the_rest(server_factory):
    """With 10 slots held by requests still arriving, 10 more connections wait in the kernel's
    backlog, and are served once slots free up. (Idle keep-alive connections would be closed
    to make room: see test_hostile_async.)"""
    srv = server_factory(
        APP, "--worker-connections", "10", "--keep-alive", "30", worker_class="async"
    )
    head = b"GET /hello HTTP/1.1\r\nHost: x\r\n"
    holders = [Client(srv.address()) for _ in range(10)]
    waiting = []
    try:
        for client in holders:
            client.send(head)
        waiting = [Client(srv.address()) for _ in range(10)]
        for client in waiting:
            client.send(build_request("GET", "/hello", [("Connection", "close")]))
        readable, _, _ = select.select([c.sock for c in waiting], [], [], 0.3)
        assert readable == [], "more connections served than --worker-connections allows"
        for client in holders[:5]:
            client.send(b"Connection: close\r\n\r\n")
        _answered(holders[:5], 5, PROMPT)
        _answered(waiting, 10, PROMPT)
    finally:
        for client in holders + waiting:
            client.close()


def test_threads_run_requests_concurrently(server_factory):
    srv = server_factory(APP, "--threads", "4", worker_class="async", workers=1)
    wsgi = json.loads(srv.get("/environ").body)["wsgi"]
    assert wsgi["multithread"] is True
    assert wsgi["multiprocess"] is False
    barrier = threading.Barrier(4)
    results = [None] * 4

    def client(i):
        barrier.wait(PROMPT)
        response = srv.get(f"/sleep?s=0.3&token=thread{i}", timeout=PROMPT)
        results[i] = response.status

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * PROMPT)
    elapsed = time.monotonic() - started
    assert results == [200] * 4
    assert elapsed < 1.0, f"4 requests that sleep 0.3 s took {elapsed:.2f}s on 4 threads"


def test_threads_keep_pipelined_answers_in_order(server_factory):
    srv = server_factory(APP, "--threads", "4", worker_class="async", workers=1)
    raw = b""
    for i in range(40):
        target = f"/sleep?s=0.05&token=p{i}" if i % 4 == 0 else f"/seq?i={i}"
        raw += build_request("GET", target)
    with Client(srv.address()) as client:
        client.send(raw)
        for i in range(40):
            response = client.read_response()
            if i % 4 == 0:
                assert (response.status, response.body) == (200, b"slept\n"), (i, response)
            else:
                assert_seq(response, i)


# --- graceful stop ----------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["1", "4"])
def test_term_finishes_in_flight_and_closes_idle_connections(server_factory, threads):
    srv = server_factory(
        APP,
        *("--graceful-timeout", "10", "--keep-alive", "30", "--threads", threads),
        worker_class="async",
    )
    with Client(srv.address()) as idle, Client(srv.address()) as busy:
        idle.send(seq(0))
        first = idle.read_response()
        assert_seq(first, 0)
        assert "close" not in connection_tokens(first)
        mark = srv.log_mark()
        busy.send(build_request("GET", f"/sleep?s=1&token=term{threads}"))
        srv.wait_log(rf"sleep start term{threads}", since=mark)
        srv.signal(signal.SIGTERM)
        sent = time.monotonic()
        assert idle.read_until_close(timeout=PROMPT) == b""
        idle_closed = time.monotonic() - sent
        if threads != "1":  # with one thread, the app holds the loop until it returns
            assert not busy.pending(), "the idle connection was closed only after the app returned"
        response = busy.read_response()
        assert response is not None, "the request in flight got no answer"
        assert (response.status, response.body) == (200, b"slept\n")
        assert "close" in connection_tokens(response), response.headers
        assert busy.read_until_close() == b""
    assert srv.wait_exit(15) == 0, srv.stderr
    assert srv.leftovers() == []
    assert idle_closed < PROMPT
