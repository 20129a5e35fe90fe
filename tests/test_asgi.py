"""The asgi worker end to end (``-k asgi``), each behaviour beside gunicorn 27's ``-k asgi``
where gunicorn has it: tiny ASGI apps of tests/apps/tiny_asgi.py over real sockets."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time

import pytest
from conftest import (
    Client,
    Server,
    decode_chunked,
    gunicorn_command,
    start_server,
    wait_for,
)
from test_tls import certs as certs  # the fixture

APP = "apps.tiny_asgi:app"
PEERS = ["ferricorn", "gunicorn"]


def serve(peer: str, app: str = APP, *extra: str, **kwargs):
    """``-k asgi`` on ferricorn or gunicorn 27."""
    command = gunicorn_command() if peer == "gunicorn" else None
    return start_server(app, *extra, worker_class="asgi", command=command, **kwargs)


@pytest.fixture(params=PEERS)
def peer(request):
    return request.param


@pytest.fixture
def servers():
    """Servers a test started; stopped after it."""
    started = []

    def start(*args, **kwargs):
        server = serve(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def noted(log, event: str) -> bool:
    """Whether the app wrote ``event`` to its notes file (see tests/apps/tiny_asgi.py)."""
    return log.exists() and f" {event}\n" in log.read_text()


def get(client: Client, target: str, extra: bytes = b"") -> bytes:
    return b"GET " + target.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


def test_hello_keep_alive_and_pipelining(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/") * 3)
        for _ in range(3):
            response = client.read_response()
            assert response.status == 200 and response.body == b"Hello, World!"
        client.send(get(client, "/again"))
        assert client.read_response().body == b"Hello, World!"


def test_streamed_response_is_chunked_as_it_comes(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/stream"))
        response = client.read_response()
    assert response.header("Transfer-Encoding").lower() == "chunked"
    assert response.body == b"".join(b"piece %d\n" % i for i in range(5))


def test_http_1_0_streamed_response_ends_with_the_close(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(b"GET /stream HTTP/1.0\r\n\r\n")
        rest = client.read_until_close()
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == b"".join(b"piece %d\n" % i for i in range(5))


def _chunked_upload(size: int, piece: int = 64 * 1024) -> bytes:
    out = bytearray(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    body = bytes(range(256)) * (size // 256)
    for i in range(0, len(body), piece):
        part = body[i : i + piece]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out), body


def test_streamed_upload_reaches_the_app_in_pieces(servers, peer):
    server = servers(peer)
    raw, body = _chunked_upload(4 << 20)
    with Client(server.address()) as client:
        client.send(raw)
        response = client.read_response()
    assert response.status == 200
    assert response.body == b"%d:" % len(body) + body[:16] + body[-16:]
    # Not read whole into memory first: the app's receive() got it piece by piece.
    assert int(response.header("x-pieces")) > 4


def test_content_length_upload_with_expect_continue(servers, peer):
    server = servers(peer)
    body = b"x" * 300_000
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % len(body)
    with Client(server.address()) as client:
        client.send(head + b"Expect: 100-continue\r\n\r\n")
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        wait_for(lambda: client._fill(time.monotonic() + 10, "100") or client.buffer, 10, "a 100")
        assert bytes(client.buffer).startswith(interim)
        client.pos = len(interim)
        client.send(body)
        response = client.read_response()
    assert response.status == 200 and response.body.startswith(b"300000:")


def test_app_exception_is_a_500_and_a_log_line(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/boom"))
        response = client.read_response()
    assert response.status == 500
    server.wait_log(r"Error in ASGI application")
    assert "boom from the app" in server.stderr
    # The worker goes on serving.
    with Client(server.address()) as client:
        client.send(get(client, "/"))
        assert client.read_response().status == 200


def test_app_failing_mid_response_closes_the_connection(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/half"))
        rest = client.read_until_close()
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    data, complete = decode_chunked(body)
    assert data == b"partial" and not complete


def test_scope_matches_gunicorns(servers):
    shown = {}
    for peer in PEERS:
        server = servers(peer, APP, "--root-path", "/api", "--asgi-lifespan", "off")
        with Client(server.address()) as client:
            client.send(b"GET /scope?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-Thing: A b\r\n\r\n")
            shown[peer] = json.loads(client.read_response().body)
    ours, theirs = shown["ferricorn"], shown["gunicorn"]
    ours.pop("server_port"), theirs.pop("server_port")
    assert ours == theirs
    assert ours["root_path"] == "/api" and ours["query_string"] == "x=1&y=%20"
    assert ["x-thing", "A b"] in ours["headers"]


def test_lifespan_state_reaches_each_request(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/scope"))
        state = json.loads(client.read_response().body)["state"]
    assert state["started_by"] in server.worker_pids()


def test_lifespan_startup_and_shutdown_once_per_worker(tmp_path, peer):
    log = tmp_path / "lifespan.log"
    server = serve(peer, workers=2, env={"ASGI_LIFESPAN_LOG": str(log)})
    try:
        workers = set(server.worker_pids())

        def started():
            lines = log.read_text().split("\n") if log.exists() else []
            return [line for line in lines if line.endswith(" startup")]

        lines = wait_for(lambda: len(started()) >= 2 and started(), 10, "two startups")
        assert sorted(int(line.split()[0]) for line in lines) == sorted(workers)
    finally:
        server.stop()
    events = log.read_text().split()
    pids = {int(p) for p in events[0::2]}
    assert pids == workers
    for pid in workers:
        mine = [e for p, e in zip(events[0::2], events[1::2]) if int(p) == pid]
        assert mine == ["startup", "shutdown"], (pid, mine)


def test_lifespan_startup_failure_stops_the_server(servers, peer):
    command = gunicorn_command() if peer == "gunicorn" else None
    args = ["-k", "asgi", "--bind", "127.0.0.1:0", "apps.tiny_asgi:failing_lifespan"]
    server = Server(args, command=command)
    try:
        code = server.wait_exit(20)
    finally:
        server.stop()
    assert code != 0
    assert "ASGI lifespan startup failed" in server.stderr
    assert "no database" in server.stderr


def test_lifespan_auto_serves_an_app_without_it_and_on_refuses(servers, peer):
    server = servers(peer, "apps.tiny_asgi:no_lifespan")
    with Client(server.address()) as client:
        client.send(get(client, "/"))
        assert client.read_response().body == b"served without lifespan"
    command = gunicorn_command() if peer == "gunicorn" else None
    args = ["-k", "asgi", "--asgi-lifespan", "on", "-b", "127.0.0.1:0"]
    strict = Server(args + ["apps.tiny_asgi:no_lifespan"], command=command)
    try:
        assert strict.wait_exit(20) != 0
    finally:
        strict.stop()
    assert "ASGI lifespan startup failed" in strict.stderr


def test_client_gone_reaches_the_app_as_http_disconnect(tmp_path, peer):
    log = tmp_path / "events.log"
    server = serve(peer, env={"ASGI_LIFESPAN_LOG": str(log)})
    try:
        sock = socket.create_connection(server.address())
        sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: noted(log, "waiting"), 10, "the app to have the request")
        sock.close()
        wait_for(lambda: noted(log, "disconnect"), 10, "the app to hear http.disconnect")
    finally:
        server.stop()


def test_graceful_stop_finishes_the_request_in_flight(tmp_path, peer):
    log = tmp_path / "events.log"
    server = serve(peer, APP, "--graceful-timeout", "10", env={"ASGI_LIFESPAN_LOG": str(log)})
    try:
        client = Client(server.address())
        client.send(get(client, "/slow?1"))
        mark = server.log_mark()
        # Stop once the app has the request: it is in flight.
        wait_for(lambda: noted(log, "slow"), 10, "the app to have the request")
        server.signal(signal.SIGTERM)
        response = client.read_response(timeout=15)
        assert response.status == 200 and response.body == b"slow done"
        assert server.wait_exit(20) == 0
        assert "Worker exiting" in server.log_since(mark) or peer == "gunicorn"
    finally:
        server.stop()


def test_max_requests_recycles_the_worker(servers, peer):
    server = servers(peer, APP, "--max-requests", "2")
    first = set(server.worker_pids())
    for _ in range(3):
        with Client(server.address()) as client:
            client.send(get(client, "/", b"Connection: close\r\n"))
            assert client.read_response().status == 200
    wait_for(lambda: set(server.worker_pids()) - first, 15, "a new worker")


def test_malformed_request_gets_400(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        response = client.read_response()
    assert response.status == 400


def test_uvloop_asked_for_but_absent_falls_back_with_a_warning(servers, peer, tmp_path):
    """uvloop is installed here (uvicorn[standard]): a ``uvloop`` module first on the path
    that fails to import stands for its absence."""
    (tmp_path / "uvloop.py").write_text('raise ImportError("hidden by the test")\n')
    env = {"PYTHONPATH": str(tmp_path)}
    server = servers(peer, APP, "--asgi-loop", "uvloop", env=env)
    with Client(server.address()) as client:
        client.send(get(client, "/"))
        assert client.read_response().status == 200
    # The log line is read from the server's stderr by a thread: waited for, not assumed.
    wait_for(lambda: "uvloop not available" in server.stderr, 10, "the fallback's warning")


def test_forwarded_scheme_and_client_from_a_trusted_proxy(servers):
    server = servers("ferricorn", APP, "--forwarded-allow-ips", "127.0.0.1")
    with Client(server.address()) as client:
        client.send(get(client, "/scope", b"X-Forwarded-Proto: https\r\n"))
        assert json.loads(client.read_response().body)["scheme"] == "https"


def test_access_log_line_matches_gunicorns(servers):
    lines = {}
    for peer in PEERS:
        server = servers(peer, APP, "--access-logfile", "-")
        with Client(server.address()) as client:
            client.send(get(client, "/x?q=1", b"User-Agent: agent/1\r\nReferer: http://r/\r\n"))
            assert client.read_response().status == 200

        def line(server=server):
            found = [ln for ln in server.stdout.splitlines() if '"GET /x?q=1' in ln]
            return found and found[0]

        logged = wait_for(line, 10, "the access log line")
        # The time differs: compare what follows it.
        lines[peer] = logged.split("] ", 1)[1]
    assert lines["ferricorn"] == lines["gunicorn"]
    assert lines["ferricorn"] == '"GET /x?q=1 HTTP/1.1" 200 13 "http://r/" "agent/1"'


def test_hup_under_load_loses_no_request(servers):
    """ferricorn only: gunicorn 27 closes kept-alive connections under requests already
    sent on them (dozens of the requests here get no answer there)."""
    import threading

    server = servers("ferricorn", APP, "--graceful-timeout", "10")
    first = set(server.worker_pids())
    failures, answered = [], []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                with Client(server.address()) as client:
                    for _ in range(5):
                        client.send(get(client, "/"))
                        response = client.read_response()
                        if response is None or response.status != 200:
                            failures.append(response)
                            break
                        answered.append(1)
            except (OSError, AssertionError) as e:
                failures.append(e)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answered) > 50, 20, "requests before the HUP")
        server.signal(signal.SIGHUP)
        wait_for(lambda: set(server.worker_pids()) - first, 20, "the new worker")
        count = len(answered)
        wait_for(lambda: len(answered) > count + 50, 20, "requests after the HUP")
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
    assert failures == []


def test_a_blocked_loop_is_a_worker_timeout(servers):
    server = servers("ferricorn", APP, "--timeout", "2")
    first = set(server.worker_pids())
    client = Client(server.address())
    client.send(get(client, "/block"))
    server.wait_log(r"WORKER TIMEOUT \(pid:\d+\)", timeout=20)
    wait_for(lambda: set(server.worker_pids()) - first, 20, "the replacement worker")
    client.close()


def test_header_lists_and_bytearray_bodies_are_accepted(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(get(client, "/loose-types"))
        response = client.read_response()
    assert (response.status, response.header("x-a"), response.body) == (201, "1", b"loose")


def test_regression_a_buffered_body_waited_for_the_next_socket_edge(servers):
    # A body past the first message, all received already, is handed over inside
    # receive()'s call into the server, and its event waited for the socket to become
    # readable again: it never did (a pipelined request parsed inside send() had the
    # same flaw, hidden there by the writable edge that follows a write).
    server = servers("ferricorn")
    body = b"y" * 200_000
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    with Client(server.address()) as client:
        client.send(head + body)
        response = client.read_response(timeout=5)
    assert response.body.startswith(b"200000:")


def test_a_stalled_upload_meets_the_read_timeout(servers):
    server = servers("ferricorn", APP, "--read-timeout", "1")
    with Client(server.address()) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        # The app awaits the rest; the client never sends it: the worker closes.
        assert client.read_until_close(timeout=15) == b""


def _https(port: int, cert_dir, raw: bytes) -> bytes:
    from test_tls import client_context

    context = client_context(cert_dir)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(raw)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return data


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_over_tls_scheme_streaming_and_upload(servers, certs, peer):  # noqa: F811
    from test_tls import tls_args

    server = servers(peer, APP, *tls_args(certs))
    close = b"Host: localhost\r\nConnection: close\r\n"
    scope = _https(server.port, certs, b"GET /scope HTTP/1.1\r\n" + close + b"\r\n")
    assert json.loads(decode_chunked(scope.partition(b"\r\n\r\n")[2])[0])["scheme"] == "https"
    streamed = _https(server.port, certs, b"GET /stream HTTP/1.1\r\n" + close + b"\r\n")
    data, complete = decode_chunked(streamed.partition(b"\r\n\r\n")[2])
    assert complete and data == b"".join(b"piece %d\n" % i for i in range(5))
    body = bytes(range(256)) * 4096
    head = b"POST /echo HTTP/1.1\r\n" + close + b"Content-Length: %d\r\n\r\n" % len(body)
    echoed = _https(server.port, certs, head + body)
    assert decode_chunked(echoed.partition(b"\r\n\r\n")[2])[0].startswith(b"1048576:")


def test_head_gets_the_head_only_and_the_connection_goes_on(servers, peer):
    server = servers(peer)
    with Client(server.address()) as client:
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = client.read_response(head_request=True)
        assert response.status == 200 and response.body == b""
        client.send(get(client, "/"))
        assert client.read_response().body == b"Hello, World!"


def test_regression_a_connection_opened_before_a_stop_was_closed_unanswered(servers):
    """A connection accepted but not yet used when a graceful stop began was closed with
    the idle kept-alive ones, so the request its client was about to send got no answer
    (one in about a thousand on HUP under load). It now gets the WSGI async worker's
    grace for its first request, answered with ``Connection: close``. ferricorn only:
    gunicorn 27 closes such connections (docs/differences.md)."""
    server = servers("ferricorn", APP, "--graceful-timeout", "10", "--keep-alive", "30")
    kept = Client(server.address())
    kept.send(get(kept, "/"))
    assert kept.read_response().status == 200
    fresh = [Client(server.address()) for _ in range(5)]
    # Both kinds are accepted once the kept-alive one answers again.
    kept.send(get(kept, "/"))
    assert kept.read_response().status == 200
    server.signal(signal.SIGTERM)
    # The stop has begun once the idle kept-alive connection is closed under us.
    assert kept.read_response(timeout=10) is None
    for client in fresh:
        client.send(get(client, "/"))
        response = client.read_response()
        assert response is not None and response.status == 200
        assert response.header("Connection").lower() == "close"
    for client in [kept, *fresh]:
        client.close()


def test_a_uvicorn_worker_subclass_runs_as_the_asgi_worker(servers, peer):
    """gunicorn imports and runs a project's UvicornWorker subclass; ferricorn runs its asgi
    worker for it, takes the CONFIG_KWARGS it has settings for, and says so."""
    pytest.importorskip("uvicorn.workers", reason="requirements-dev.txt installs uvicorn")
    server = servers(peer, APP, "-k", "apps.uvicorn_subclass.Worker")
    with Client(server.address()) as client:
        client.send(get(client, "/"))
        assert client.read_response().body == b"Hello, World!"
    if peer == "ferricorn":
        server.wait_log(
            r"-k apps.uvicorn_subclass.Worker is a subclass of uvicorn.workers.UvicornWorker; "
            r"its code is not run; CONFIG_KWARGS taken: lifespan=off, loop=asyncio; "
            r"CONFIG_KWARGS ignored: http"
        )
        assert "ASGI lifespan" not in server.stderr
