"""Apps that misbehave, and what the server does about it (issue 8, bugs 3 to 6).

The app is apps/hostile.py: it leaves threads blocked in ``wsgi.input``, makes Rust panic
through the test hook, sleeps, and reads slow bodies. Each test shows the worker keeps
serving (the same pid answers afterwards) and that no panic escapes into the log.
"""

from __future__ import annotations

import pytest
from conftest import Client, build_request, fetch

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
