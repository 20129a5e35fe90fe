"""--timeout: before the master kills a stuck worker, the log shows the stuck request's
Python stack: the main thread's (sync worker, as before) and every busy app thread's with
its method and path (--threads), dumped by faulthandler without the GIL."""

from __future__ import annotations

import threading

import pytest
from conftest import build_request, exchange

APP = "apps.stuck:app"
MODES = {"sync": (), "threads": ("--threads", "4")}


def background_get(srv, target):
    """Sends a request whose answer (if any) comes when the worker dies."""
    answer: list = []

    def send():
        answer.append(exchange(srv.address(), [build_request("GET", target)], timeout=30.0))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", MODES)
def test_worker_timeout_logs_the_stuck_stack(server_factory, mode):
    srv = server_factory(APP, "--timeout", "2", *MODES[mode])
    pid = int(srv.get("/pid").body)
    mark = srv.log_mark()
    client = background_get(srv, "/stuck")
    srv.wait_log(rf"WORKER TIMEOUT \(pid:{pid}\).* handling GET /stuck", timeout=20, since=mark)
    srv.wait_log(r"line \d+ in stuck_here", since=mark)
    # The sync worker's request runs on its main thread: named so, not as an app thread
    # (test_regression_sync_worker_timeout_line_named_the_main_thread_an_app_thread).
    label = r"ferricorn-app-\d" if mode == "threads" else "main thread"
    match = srv.wait_log(
        rf"WORKER TIMEOUT \(pid:{pid}\) thread (0x[0-9a-f]{{16}}) \({label}\) "
        r"handling GET /stuck for",
        since=mark,
    )
    if mode == "threads":
        ident = match.group(1)
        # faulthandler's block for that very thread names stuck_here.
        srv.wait_log(rf"Thread {ident} \(most recent call first\):", since=mark)
        after = srv.log_since(mark)
        block = after[after.index(f"Thread {ident}") :].split("\n\n")[0]
        assert "stuck_here" in block, after
    client.join(30)
    srv.wait_ready()
    assert int(srv.get("/pid").body) != pid


def test_thread_holding_the_gil_in_c_is_dumped_and_killed(server_factory):
    """An app thread stuck in C with the GIL held (a regex backtracking for minutes): the
    loop cannot beat, Python's SIGABRT handler cannot run, yet faulthandler dumps the
    stack without the GIL and the SIGKILL that follows is not delayed."""
    srv = server_factory(APP, "--timeout", "2", "--threads", "4")
    pid = int(srv.get("/pid").body)
    mark = srv.log_mark()
    client = background_get(srv, "/gil")
    srv.wait_log(
        rf"WORKER TIMEOUT \(pid:{pid}\) thread .* handling GET /gil", timeout=20, since=mark
    )
    srv.wait_log(r"line \d+ in stuck_in_c", since=mark)
    srv.wait_log(rf"Worker \(pid:{pid}\) was sent signal 9", since=mark)
    client.join(30)
    srv.wait_ready()
    assert int(srv.get("/pid").body) != pid


def test_regression_app_thread_streaming_slowly_is_not_stuck(server_factory):
    """An app thread that keeps producing its response is alive: --timeout counts a thread
    silent in one request, not a long one. /trickle yields every 0.5 s for 3 s under
    --timeout 1 and is served whole, by the same worker."""
    srv = server_factory(APP, "--timeout", "1", "--threads", "4")
    pid = int(srv.get("/pid").body)
    result = exchange(srv.address(), [build_request("GET", "/trickle")], timeout=30.0)
    assert result.response is not None and result.response.status == 200, srv.stderr
    assert result.response.body == b"tick\n" * 6
    assert int(srv.get("/pid").body) == pid
    assert "WORKER TIMEOUT" not in srv.stderr, srv.stderr
