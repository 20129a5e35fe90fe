"""HTTP/1.x on the wire: rejecting malformed requests, connection handling, big bodies, load.

Each test runs on both worker classes unless it is about the sync worker's one request per
connection; tests/test_async.py has the async worker's keep-alive and concurrency behaviour.
"""

import hashlib
import json
import threading
import time

import pytest
from apps import pattern_chunks
from conftest import (
    SOCKET_TIMEOUT,
    SUMMARY_LINES,
    WORKER_CLASSES,
    Client,
    build_request,
    connect,
    exchange,
    fetch,
    gunicorn_command,
    rss_kib,
    running,
    send_pieces,
)

APP = "apps.cases:app"
ECHO = "apps.echo:app"
SYNC_ONLY = pytest.mark.parametrize("server", ["sync"], indirect=True)
GUNICORN = gunicorn_command()


@pytest.fixture(scope="module", params=WORKER_CLASSES)
def server(request):
    with running(APP, workers=2, worker_class=request.param) as srv:
        yield srv


def _rejects(server, raw, status):
    result = exchange(server.address(), [raw], half_close=True)
    assert result.response is not None, f"closed without a response; sent {raw[:120]!r}"
    assert result.response.status == status, (result.raw[:300], raw[:120])
    assert result.response.header_all("Connection") == ["close"]
    return result.response


MALFORMED = {
    "bad-request-line": (b"GARBAGE\r\n\r\n", 400),
    "request-line-missing-version": (b"GET /\r\nHost: x\r\n\r\n", 400),
    "request-line-too-long": (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        + b"\r\n",
        431,
    ),
    "header-too-large": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 10_000 + b"\r\n\r\n",
        431,
    ),
    "duplicate-content-length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 2\r\n\r\nabc",
        400,
    ),
    "content-length-and-transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "transfer-encoding-on-http10": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "transfer-encoding-not-chunked-last": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    "transfer-encoding-unknown-coding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: one\r\n two\r\n\r\n", 400),
    "bare-lf-request-line": (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    "bare-lf-header": (b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_is_rejected_and_closed(server, case):
    raw, status = MALFORMED[case]
    _rejects(server, raw, status)


# --- limits set on the command line ---------------------------------------------------------


@pytest.fixture(scope="module", params=WORKER_CLASSES)
def limited(request):
    flags = ["--limit-request-line=200", "--limit-request-fields", "5"]
    flags += ["--limit-request-field_size", "100"]
    with running(APP, *flags, worker_class=request.param) as srv:
        yield srv


def test_limit_request_line_flag(limited):
    assert limited.get("/hello?" + "a" * 100).status == 200
    _rejects(limited, build_request("GET", "/hello?" + "a" * 300), 414)


def test_limit_request_fields_flag(limited):
    assert limited.get("/hello", [("X-A", "1"), ("X-B", "2")]).status == 200
    headers = [(f"X-H{i}", "v") for i in range(10)]
    _rejects(limited, build_request("GET", "/hello", headers), 431)


def test_limit_request_field_size_flag(limited):
    assert limited.get("/hello", [("X-A", "v" * 40)]).status == 200
    _rejects(limited, build_request("GET", "/hello", [("X-A", "v" * 300)]), 431)


def test_limit_request_field_size_dash_spelling(server_factory, worker_class):
    srv = server_factory(APP, "--limit-request-field-size=100", worker_class=worker_class)
    assert srv.get("/hello", [("X-A", "v" * 40)]).status == 200
    _rejects(srv, build_request("GET", "/hello", [("X-A", "v" * 300)]), 431)


# --- one request per connection (sync) -------------------------------------------------------


@SYNC_ONLY
@pytest.mark.parametrize(
    "raw",
    [
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ],
    ids=["pipelined", "http11-keep-alive", "http10-keep-alive"],
)
def test_sync_worker_answers_once_and_closes(server, raw):
    result = exchange(server.address(), [raw])
    assert result.response.status == 200
    assert result.response.header_all("Connection") == ["close"]
    assert result.raw.count(b"HTTP/1.") == 1, result.raw
    assert result.response.raw_body == b"hello\n"


@SYNC_ONLY
@pytest.mark.parametrize("target", ["/hello", "/stream", "/error-before?token=c", "/nope"])
def test_every_response_says_connection_close(server, target):
    response = server.get(target)
    assert response.header_all("Connection") == ["close"], response.headers


# --- big bodies -------------------------------------------------------------------------------

BIG = 50 * 1024 * 1024


def test_50mb_upload_sha256_and_worker_rss(server_factory, worker_class):
    srv = server_factory(APP, workers=1, worker_class=worker_class)
    worker = srv.worker_pids()[0]
    # Warm up: the first request loads code paths the measurement should not count.
    warm = fetch(srv.address(), build_request("POST", "/sha256", body=b"w" * 1_000_000))
    assert warm.status == 200
    baseline = rss_kib(worker)
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(worker))
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest = hashlib.sha256()
    head = build_request("POST", "/sha256", [("Content-Length", str(BIG))])
    try:
        with Client(srv.address(), timeout=60) as client:
            client.send(head)
            for piece in pattern_chunks(BIG, seed=50):
                digest.update(piece)
                client.send(piece)
            response = client.read_response()
    finally:
        done.set()
        sampler.join()
    assert response.status == 200, response
    doc = json.loads(response.body)
    assert doc == {"sha256": digest.hexdigest(), "length": BIG}
    growth_mib = (peak[0] - baseline) / 1024
    line = (
        f"{worker_class} worker RSS during a 50 MB upload: "
        f"{baseline / 1024:.1f} MiB + {growth_mib:.2f} MiB"
    )
    print(line)
    SUMMARY_LINES.append(line)
    assert growth_mib < 10, line


def test_50mb_download_sha256(server):
    expected = hashlib.sha256()
    for piece in pattern_chunks(BIG):
        expected.update(piece)
    response = fetch(server.address(), build_request("GET", f"/download?n={BIG}"), timeout=60)
    assert response.status == 200
    assert response.header("Content-Length") == str(BIG)
    assert len(response.raw_body) == BIG
    assert hashlib.sha256(response.raw_body).hexdigest() == expected.hexdigest()


# --- concurrency ------------------------------------------------------------------------------


def test_four_workers_serve_200_concurrent_clients(server_factory, worker_class):
    srv = server_factory(APP, workers=4, worker_class=worker_class)
    clients = 200
    barrier = threading.Barrier(clients)
    results = [None] * clients
    pids = [None] * clients

    def client(i):
        try:
            barrier.wait(SOCKET_TIMEOUT)
            response = fetch(srv.address(), build_request("GET", "/pid"), timeout=30)
            results[i] = response.status if response else "closed"
            pids[i] = json.loads(response.body)["pid"]
        except Exception as exc:  # reported below, per client
            results[i] = repr(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    failures = [(i, r) for i, r in enumerate(results) if r != 200]
    assert failures == [], failures[:10]
    served_by = set(pids)
    SUMMARY_LINES.append(
        f"200 concurrent clients on 4 {worker_class} workers: all 200 OK in {elapsed:.2f}s, "
        f"{len(served_by)} workers answered"
    )
    assert served_by <= set(srv.worker_pids())


def test_client_that_never_sends_does_not_block_others(server):
    """Two workers: one idle connection must not stop the other worker from answering."""
    with connect(server.address()) as idle:
        send_pieces(idle, [b"GET /hel"])
        assert server.get("/hello").status == 200


# --- hostile numbers and limits (issue 8), each checked against a live gunicorn 27 -----------


@pytest.fixture(scope="module")
def gunicorn_echo():
    """gunicorn 27 with the echo app, the reference for the answers below."""
    with running(ECHO, "--no-control-socket", command=GUNICORN) as srv:
        yield srv


def _status(raw: bytes) -> int | None:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None


def _chunked_post(size_line: bytes, rest: bytes = b"hello\r\n0\r\n\r\n") -> bytes:
    head = b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + size_line + b"\r\n" + rest


def test_regression_chunk_size_overflow_smuggles_a_request(server_factory, worker_class):
    """Bug 1: `10000000000000000` (2^64) wrapped to 0, the last chunk, so the async worker
    answered `GET /smuggled` from the same connection as a second request."""
    srv = server_factory(ECHO, worker_class=worker_class)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = _chunked_post(b"10000000000000000", b"\r\n" + smuggled)
    result = exchange(srv.address(), [raw])
    assert result.raw.count(b"HTTP/1.") == 1, result.raw
    assert result.response.status == 400, result.raw
    assert result.response.header_all("Connection") == ["close"]
    assert b"smuggled" not in result.raw


@pytest.mark.parametrize(
    "size", [b"10000000000000005", b"100000000000000005", b"1000000000000000000000000000005"]
)
def test_regression_chunk_size_overflow_at_every_digit_count(server_factory, worker_class, size):
    """Bug 11: these sizes were read as 5 (the digits past 2^64 wrapped)."""
    srv = server_factory(ECHO, worker_class=worker_class)
    result = exchange(srv.address(), [_chunked_post(size)])
    assert result.raw.count(b"HTTP/1.") == 1, result.raw
    assert result.response.status == 400, result.raw


def test_regression_empty_chunk_extension_is_refused(server_factory, worker_class, gunicorn_echo):
    """Bug 11: `21;` then CRLF has no extension name (RFC 9112 §7.1.1); gunicorn says 400."""
    raw = _chunked_post(b"21;", b"x" * 0x21 + b"\r\n0\r\n\r\n")
    srv = server_factory(ECHO, worker_class=worker_class)
    ours = exchange(srv.address(), [raw])
    theirs = exchange(gunicorn_echo.address(), [raw])
    assert _status(theirs.raw) == 400, theirs.raw[:300]
    assert _status(ours.raw) == 400, ours.raw[:300]


def _nine_kb_head() -> bytes:
    """A 9 KB head of nine 1 KB fields: every field within gunicorn's 8190 bytes."""
    fields = [(f"X-Field-{i}", "v" * 1000) for i in range(9)]
    return build_request("GET", "/hello", fields)


def _one_kb_pieces(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1024] for i in range(0, len(raw), 1024)]


def test_regression_field_size_0_same_answer_whole_or_in_pieces(
    server_factory, worker_class, gunicorn_echo
):
    """Bug 7: with `--limit-request-field_size 0` a 9 KB head was parsed when sent whole
    and refused with 431 in 1 KB pieces. gunicorn 27 reads 0 as 8190 and serves both."""
    raw = _nine_kb_head()
    assert len(raw) > 9000
    srv = server_factory(APP, "--limit-request-field_size", "0", worker_class=worker_class)
    reference = server_factory(
        APP, "--limit-request-field_size", "0", "--no-control-socket", command=GUNICORN
    )
    for name, target in [("ferricorn", srv), ("gunicorn", reference)]:
        whole = exchange(target.address(), [raw])
        pieces = exchange(target.address(), _one_kb_pieces(raw), pace=0.002)
        assert (_status(whole.raw), _status(pieces.raw)) == (200, 200), (name, pieces.raw[:200])


def test_regression_http11_without_host_is_refused(server, gunicorn_echo):
    """Bug 8: RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    gunicorn 27 serves it (a difference docs/differences.md records)."""
    raw = b"GET /hello HTTP/1.1\r\n\r\n"
    _rejects(server, raw, 400)
    assert _status(exchange(gunicorn_echo.address(), [raw], half_close=True).raw) == 200
    http10 = exchange(server.address(), [b"GET /hello HTTP/1.0\r\n\r\n"])
    assert http10.response.status == 200


@pytest.mark.parametrize(
    "flags",
    [
        ["--max-requests", "1", "--max-requests-jitter", str(2**64 - 1)],
        ["--max-requests", str(2**64 - 1), "--max-requests-jitter", "5"],
    ],
    ids=["jitter-max", "max-requests-max"],
)
def test_regression_max_requests_jitter_overflow(server_factory, worker_class, flags):
    """`--max-requests-jitter` 2^64-1 made the jitter's `j + 1` wrap to 0, and `% 0` made
    every worker panic at boot; `--max-requests` 2^64-1 plus jitter overflowed too."""
    srv = server_factory(APP, *flags, worker_class=worker_class)
    assert fetch(srv.address(), build_request("GET", "/hello")).status == 200
    assert "panic" not in srv.stderr.lower(), srv.stderr[-2000:]
