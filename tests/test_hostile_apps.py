"""Apps that misbehave, and what the server does about it (issue 8, bugs 3 to 6).

The app is apps/hostile.py: it leaves threads blocked in ``wsgi.input``, makes Rust panic
through the test hook, sleeps, and reads slow bodies. Each test shows the worker keeps
serving (the same pid answers afterwards) and that no panic escapes into the log.
"""

from __future__ import annotations

import re
import signal

import pytest
from conftest import (
    SUMMARY_LINES,
    Client,
    build_request,
    connect,
    fetch,
    gunicorn_command,
    parse_response,
    pid_alive,
    read_until_close,
    send_pieces,
    start_server,
    wait_for,
)

APP = "apps.hostile:app"
PROMPT = 10.0
GUNICORN = gunicorn_command()

# Each worker mode where app code runs on a thread of its own (sync: the worker's; async:
# an app thread, for a streamed body with --threads 1 and for every request with 4).
THREAD_MODES = {
    "sync": ("sync", []),
    "async": ("async", []),
    "async-threads4": ("async", ["--threads", "4"]),
}


def pid_of(response) -> int:
    assert response is not None and response.status == 200, response
    return int(response.body.split()[1])


def served_by(srv) -> int:
    return pid_of(fetch(srv.address(), build_request("GET", "/pid")))


def assert_no_panic(srv) -> None:
    log = srv.stderr
    assert "PanicException" not in log and "panicked" not in log, log


# --- bug 3: a thread the app left in wsgi.input.read() -----------------------------------


@pytest.mark.parametrize("mode", THREAD_MODES)
def test_regression_app_thread_blocked_in_input_read_does_not_panic_the_server(
    server_factory, mode
):
    worker_class, extra = THREAD_MODES[mode]
    srv = server_factory(APP, *extra, worker_class=worker_class)
    before = served_by(srv)
    with Client(srv.address(), timeout=PROMPT) as client:
        # A body announced and never sent; over 1 MiB, so the async worker streams it.
        client.send(b"POST /abandon-reader HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        response = client.read_response()
        assert pid_of(response) == before
        # The body was not read: the connection cannot carry another request, so it closes.
        assert client.read_until_close() == b""
    for _ in range(5):  # more requests than app threads: none was lost
        assert served_by(srv) == before
    assert_no_panic(srv)


# --- bug 4: panics are contained ----------------------------------------------------------

PANIC_LINE = r"\[ERROR\] Panic on thread .*test panic requested by the app"


@pytest.mark.parametrize(
    "worker_class, extra",
    # Two connections at most: a slot lost to each panic would soon leave none.
    [("sync", []), ("async", ["--threads", "2", "--worker-connections", "2"])],
    ids=["sync", "async-threads2"],
)
def test_regression_panic_in_a_request_fails_it_and_the_worker_keeps_serving(
    server_factory, worker_class, extra
):
    """A panic on the thread that runs the app fails that request only: the connection
    closes, the worker serves on, and no app thread or connection slot is lost (more
    panics than either)."""
    srv = server_factory(APP, *extra, worker_class=worker_class)
    before = served_by(srv)
    for _ in range(3):
        with Client(srv.address(), timeout=PROMPT) as client:
            client.send(build_request("GET", "/panic"))
            response = client.read_response()
            assert response is None or response.status == 500, response
            assert client.closed or client.read_until_close() == b""
        assert served_by(srv) == before
    # The panic line is written by the worker; the test reads stderr as it comes.
    wait_for(lambda: len(re.findall(PANIC_LINE, srv.stderr)) >= 3, PROMPT, "3 panic lines")
    log = srv.stderr
    assert len(re.findall(PANIC_LINE, log)) == 3, log
    assert "PanicException" not in log and "panicked" not in log, log


def test_regression_panic_in_a_request_on_the_loop_thread_fails_it_only(server_factory):
    """With --threads 1 the app runs on the loop thread: a panic in one request closes that
    connection only; the same worker serves the next request and a connection left open
    beside it."""
    srv = server_factory(APP, "--threads", "1", worker_class="async")
    before = served_by(srv)
    with Client(srv.address(), timeout=PROMPT) as bystander:
        bystander.send(build_request("GET", "/"))
        assert bystander.read_response().status == 200
        for _ in range(3):
            with Client(srv.address(), timeout=PROMPT) as client:
                client.send(build_request("GET", "/panic"))
                response = client.read_response()
                assert response is None or response.status == 500, response
            assert served_by(srv) == before
        bystander.send(build_request("GET", "/"))
        assert bystander.read_response().status == 200
    # The panic line is written by the worker; the test reads stderr as it comes.
    wait_for(lambda: len(re.findall(PANIC_LINE, srv.stderr)) >= 3, PROMPT, "3 panic lines")
    log = srv.stderr
    assert len(re.findall(PANIC_LINE, log)) == 3, log
    assert "panicked (exit code" not in log and "PanicException" not in log, log


def test_regression_panic_outside_a_request_ends_the_worker_with_its_exit_code(server_factory):
    """A panic in the worker's own loop, outside any request, ends the worker with exit
    code 70, in one log line; the master reports it and a new worker serves."""
    srv = server_factory(APP, "--threads", "1", worker_class="async")
    before = served_by(srv)
    mark = srv.log_mark()
    with Client(srv.address(), timeout=PROMPT) as client:
        client.send(build_request("GET", "/panic-outside"))
        client.read_response()
    srv.wait_log(rf"Worker \(pid:{before}\) panicked \(exit code 70\)", since=mark)
    wait_for(lambda: not pid_alive(before), PROMPT, "the worker that panicked to be gone")
    after = wait_for(lambda: served_by_other(srv, before), PROMPT, "a new worker")
    assert after != before
    log = srv.log_since(mark)
    assert len(re.findall(r"\[ERROR\] Panic on thread .*outside a request", log)) == 1, log
    assert "PanicException" not in log and "panicked at" not in log, log


def served_by_other(srv, old: int) -> int | None:
    try:
        pid = served_by(srv)
    except (OSError, AssertionError):
        return None
    return pid if pid != old else None


# --- bug 5: a graceful stop serves the listen backlog ---------------------------------------


def answered_after_term(srv, clients: int = 10) -> int:
    """``clients`` requests to an app sleeping 0.5 s; TERM once the first is in the app.
    Returns how many got their answer (the rest were reset or closed unanswered)."""
    socks = [connect(srv.address(), PROMPT) for _ in range(clients)]
    try:
        for sock in socks:
            sock.sendall(build_request("GET", "/sleep?s=0.5", [("Connection", "close")]))
        srv.wait_log(r"sleep start \d+")
        srv.signal(signal.SIGTERM)
        answered = 0
        for sock in socks:
            raw, _ = read_until_close(sock, 40.0)
            response = parse_response(raw)
            answered += response is not None and response.status == 200
        return answered
    finally:
        for sock in socks:
            sock.close()


def test_regression_term_serves_every_connection_in_the_backlog(server_factory):
    """One sync worker, ten connections in the backlog, TERM: all ten are answered (as
    Kubernetes rollouts need). gunicorn's sync worker runs the same test, for information."""
    gunicorn = start_server(APP, "--no-control-socket", command=GUNICORN)
    try:
        theirs = answered_after_term(gunicorn)
        gunicorn.wait_exit(40.0)
    finally:
        gunicorn.stop()
    srv = server_factory(APP)
    ours = answered_after_term(srv)
    srv.wait_exit(40.0)
    SUMMARY_LINES.append(
        f"TERM with 10 connections queued (sync): ferricorn {ours}/10, gunicorn {theirs}/10"
    )
    assert ours == 10, srv.stderr


# --- bug 6: a slow client is bounded by --read-timeout, not by --timeout ------------------

SLOW_BODY = 16  # bytes, one every half second: 8 s, well past --timeout 3


def slow_upload(srv):
    """POST /slurp with its body sent one byte every 0.5 s; the response (None: no answer)."""
    with connect(srv.address(), 30.0) as sock:
        sock.sendall(b"POST /slurp HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % SLOW_BODY)
        send_pieces(sock, [b"x"] * SLOW_BODY, pace=0.5)
        raw, _ = read_until_close(sock, 30.0)
    return parse_response(raw)


def status_of(response) -> str:
    return str(response.status) if response else "no answer"


def test_regression_slow_body_does_not_get_the_sync_worker_killed(server_factory):
    """--timeout 3 and a body that takes 8 s: the worker waits on the client (bounded by
    --read-timeout) with its heartbeat going, so the request succeeds and the worker lives.
    gunicorn's sync worker runs the same upload, for information: its worker is killed."""
    gunicorn = start_server(APP, "--no-control-socket", "-t", "3", command=GUNICORN)
    try:
        theirs = slow_upload(gunicorn)
        gunicorn_killed = "WORKER TIMEOUT" in gunicorn.stderr
    finally:
        gunicorn.stop()
    srv = server_factory(APP, "-t", "3")
    before = served_by(srv)
    response = slow_upload(srv)
    SUMMARY_LINES.append(
        f"{SLOW_BODY}-byte body over {SLOW_BODY / 2:g} s with -t 3 (sync): ferricorn "
        f"{status_of(response)}; gunicorn {status_of(theirs)}"
        f" ({'worker killed' if gunicorn_killed else 'worker kept'})"
    )
    assert response is not None and response.status == 200, srv.stderr
    assert response.body == f"/slurp {before} {SLOW_BODY}\n".encode()
    assert served_by(srv) == before
    assert "WORKER TIMEOUT" not in srv.stderr, srv.stderr


SILENT = {
    "head": b"GET /pid HTTP/1.1\r\nHost: x\r\n",
    "body": b"POST /slurp HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
}


@pytest.mark.parametrize("part", SILENT)
def test_regression_silent_client_is_disconnected_after_the_read_timeout(
    server_factory, worker_class, part
):
    """A client silent mid-request for longer than --read-timeout (and --timeout) is
    disconnected (4xx or a bare close); the worker is not killed and serves on."""
    srv = server_factory(APP, "-t", "2", "--read-timeout", "4", worker_class=worker_class)
    before = served_by(srv)
    with connect(srv.address(), 30.0) as sock:
        sock.sendall(SILENT[part])
        raw, _ = read_until_close(sock, 30.0)
    response = parse_response(raw)
    assert response is None or 400 <= response.status < 500, response
    assert served_by(srv) == before
    assert "WORKER TIMEOUT" not in srv.stderr, srv.stderr
