"""Apps that misbehave, and what the server does about it (issue 8, bugs 3 to 6).

The app is apps/hostile.py: it leaves threads blocked in ``wsgi.input``, makes Rust panic
through the test hook, sleeps, and reads slow bodies. Each test shows the worker keeps
serving (the same pid answers afterwards) and that no panic escapes into the log.
"""

from __future__ import annotations

import re

import pytest
from conftest import Client, build_request, fetch, pid_alive, wait_for

APP = "apps.hostile:app"
PROMPT = 10.0

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
    [("sync", []), ("async", ["--threads", "2"])],
    ids=["sync", "async-threads2"],
)
def test_regression_panic_in_a_request_fails_it_and_the_worker_keeps_serving(
    server_factory, worker_class, extra
):
    """A panic on the thread that runs the app fails that request only: the connection
    closes, the worker serves on, and no app thread is lost (more panics than threads)."""
    srv = server_factory(APP, *extra, worker_class=worker_class)
    before = served_by(srv)
    for _ in range(3):
        with Client(srv.address(), timeout=PROMPT) as client:
            client.send(build_request("GET", "/panic"))
            response = client.read_response()
            assert response is None or response.status == 500, response
            assert client.closed or client.read_until_close() == b""
        assert served_by(srv) == before
    log = srv.stderr
    assert len(re.findall(PANIC_LINE, log)) == 3, log
    assert "PanicException" not in log and "panicked" not in log, log


def test_regression_panic_on_the_event_loop_ends_the_worker_with_its_exit_code(server_factory):
    """With --threads 1 the app runs on the loop thread: the panic ends the worker with
    exit code 70, in one log line; the master reports it and a new worker serves."""
    srv = server_factory(APP, "--threads", "1", worker_class="async")
    before = served_by(srv)
    mark = srv.log_mark()
    with Client(srv.address(), timeout=PROMPT) as client:
        client.send(build_request("GET", "/panic"))
        assert client.read_response() is None
    srv.wait_log(rf"Worker \(pid:{before}\) panicked \(exit code 70\)", since=mark)
    wait_for(lambda: not pid_alive(before), PROMPT, "the worker that panicked to be gone")
    after = wait_for(lambda: served_by_other(srv, before), PROMPT, "a new worker")
    assert after != before
    log = srv.log_since(mark)
    assert len(re.findall(PANIC_LINE, log)) == 1, log
    assert "PanicException" not in log and "panicked at" not in log, log


def served_by_other(srv, old: int) -> int | None:
    try:
        pid = served_by(srv)
    except (OSError, AssertionError):
        return None
    return pid if pid != old else None
