"""--request-timeout: a request past its deadline gets RequestTimeout raised in its thread
(PyThreadState_SetAsyncExc), a 504 if no header went out (else its response is cut), its
stack in the log, and the worker lives on. gunicorn has no such setting (nothing to compare
against); tests/apps/stuck.py holds the apps."""

from __future__ import annotations

import re
import threading

import pytest
from conftest import build_request, exchange, run_cli

APP = "apps.stuck:app"
THREADS = ("--threads", "4")
# The two ways an app thread runs the app: --threads 4 (the async worker's app threads) and
# the sync worker's main thread.
MODES = {"threads": THREADS, "sync": ()}


def get(srv, target, timeout=30.0):
    return exchange(srv.address(), [build_request("GET", target)], timeout=timeout).response


def pid_of(srv) -> int:
    response = srv.get("/pid")
    assert response.status == 200, srv.stderr
    return int(response.body)


@pytest.mark.parametrize("mode", MODES)
def test_stuck_request_gets_504_its_stack_logged_and_the_same_worker_serves_on(
    server_factory, mode
):
    srv = server_factory(APP, "--request-timeout", "1", *MODES[mode])
    before = pid_of(srv)
    mark = srv.log_mark()
    response = get(srv, "/stuck")
    assert response is not None and response.status == 504, srv.stderr
    srv.wait_log(r"REQUEST TIMEOUT GET /stuck on thread 0x[0-9a-f]{16}", since=mark)
    srv.wait_log(r"in stuck_here", since=mark)
    assert pid_of(srv) == before
    assert "WORKER TIMEOUT" not in srv.stderr, srv.stderr


def test_regression_sync_worker_timeout_lines_named_the_main_thread_an_app_thread(
    server_factory,
):
    """The REQUEST TIMEOUT line (and the master's WORKER TIMEOUT line) called the sync
    worker's main thread `ferricorn-app-0`, an app thread it does not have."""
    srv = server_factory(APP, "--request-timeout", "1")
    mark = srv.log_mark()
    assert get(srv, "/stuck").status == 504, srv.stderr
    srv.wait_log(r"REQUEST TIMEOUT GET /stuck on thread 0x[0-9a-f]{16} \(main thread\)", since=mark)
    assert "ferricorn-app-" not in srv.log_since(mark)


def test_request_in_time_is_untouched(server_factory):
    srv = server_factory(APP, "--request-timeout", "1", *THREADS)
    for _ in range(3):
        response = srv.get("/quick")
        assert (response.status, response.body) == (200, b"quick\n")
    assert "REQUEST TIMEOUT" not in srv.stderr, srv.stderr


def assert_stream_cut(srv) -> None:
    """``/stream`` past the deadline: its head and first chunk arrived, then the close (no
    last chunk), and the log says why."""
    result = exchange(srv.address(), [build_request("GET", "/stream")], timeout=30.0)
    assert result.response is not None and result.response.status == 200, srv.stderr
    assert b"first chunk" in result.raw
    assert not result.raw.endswith(b"0\r\n\r\n"), result.raw  # no last chunk: cut off
    assert b"never" not in result.raw
    srv.wait_log(r"REQUEST TIMEOUT GET /stream")


def test_streaming_response_that_sent_its_head_is_cut_not_504(server_factory):
    srv = server_factory(APP, "--request-timeout", "1", *THREADS)
    before = pid_of(srv)
    assert_stream_cut(srv)
    assert pid_of(srv) == before


def test_except_exception_does_not_swallow_request_timeout(server_factory):
    """RequestTimeout is a BaseException (as WorkerTimeout): an app's ``except Exception``
    around the stuck call does not catch it, so the deadline holds."""
    srv = server_factory(APP, "--request-timeout", "1", *THREADS)
    response = get(srv, "/swallow")
    assert response is not None and response.status == 504, (response, srv.stderr)
    assert b"swallowed" not in response.body


@pytest.mark.parametrize("flags", [(), ("--request-timeout", "0")], ids=["absent", "zero"])
def test_off_when_absent_or_zero(server_factory, flags):
    """/nap runs 2.5 s in stuck_here: past a 1 s deadline, but with none it answers."""
    srv = server_factory(APP, *flags, *THREADS)
    response = get(srv, "/nap")
    assert (response.status, response.body) == (200, b"woke\n"), srv.stderr
    assert "REQUEST TIMEOUT" not in srv.stderr


def test_fractional_deadline(server_factory):
    srv = server_factory(APP, "--request-timeout", "1.5", *THREADS)
    assert get(srv, "/nap").status == 504


def test_thread_stuck_in_one_c_call_falls_back_to_the_worker_timeout(server_factory):
    """time.sleep(60) never returns to Python, so RequestTimeout cannot land: the thread
    stays silent, the log says it has not unwound after the 5 s grace, and --timeout
    replaces the worker, with the stack dump."""
    srv = server_factory(APP, "--request-timeout", "1", "--timeout", "8", *THREADS)
    before = pid_of(srv)
    mark = srv.log_mark()
    answer: list = []
    client = threading.Thread(target=lambda: answer.append(get(srv, "/stuck-long")))
    client.start()
    srv.wait_log(r"REQUEST TIMEOUT GET /stuck-long", since=mark)
    srv.wait_log(r"GET /stuck-long \(thread 0x[0-9a-f]+\) has not unwound 5s", since=mark)
    srv.wait_log(rf"WORKER TIMEOUT \(pid:{before}\)", timeout=20, since=mark)
    srv.wait_log(r"in stuck_long", since=mark)
    client.join(30)
    srv.wait_ready()
    assert pid_of(srv) != before


def test_after_a_timeout_the_threads_serve_the_next_requests(server_factory):
    """The thread clears any exception left for it when its request ends (the watchdog may
    fire just as a request finishes), so the requests after a 504 all succeed."""
    srv = server_factory(APP, "--request-timeout", "1", "--threads", "2")
    assert get(srv, "/stuck").status == 504
    for _ in range(6):
        assert srv.get("/quick").status == 200, srv.stderr


def test_async_loop_thread_is_not_interrupted(server_factory):
    """-k async --threads 1 runs a buffered request on the loop thread, among every other
    connection's: an exception aimed at one request could land in another's, so the
    deadline does not apply there (docs/timeouts.md); --timeout still does."""
    srv = server_factory(APP, "--request-timeout", "1", "--threads", "1", worker_class="async")
    response = get(srv, "/nap")
    assert (response.status, response.body) == (200, b"woke\n"), srv.stderr
    assert "REQUEST TIMEOUT" not in srv.stderr


def test_config_file_and_bad_values(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("request_timeout = 2.5\n")
    out = run_cli("--print-config", "-c", str(conf), APP)
    assert re.search(r"^request_timeout\s+= 2.5$", out.stdout, re.M), out.stdout
    bad = run_cli("--request-timeout", "soon", APP)
    assert bad.returncode == 2
    assert '--request-timeout "soon": expected a non-negative number of seconds' in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


# --- the asgi worker: the request's task is cancelled ------------------------------------------

ASGI_APP = "apps.stuck:asgi_app"


def asgi(server_factory, *flags):
    return server_factory(ASGI_APP, "--request-timeout", "1", *flags, worker_class="asgi")


def test_asgi_stuck_request_gets_504_its_stack_logged_and_the_worker_serves_on(server_factory):
    srv = asgi(server_factory)
    before = pid_of(srv)
    mark = srv.log_mark()
    response = get(srv, "/stuck")
    assert response is not None and response.status == 504, srv.stderr
    assert response.header("Connection") == "close"
    srv.wait_log(r"REQUEST TIMEOUT GET /stuck after 1\.\ds \(--request-timeout 1s\)", since=mark)
    srv.wait_log(r"in stuck_here_async", since=mark)
    srv.wait_log(r"Error handling request GET /stuck", since=mark)
    assert pid_of(srv) == before
    for _ in range(3):
        assert srv.get("/quick").status == 200
    assert "WORKER TIMEOUT" not in srv.stderr, srv.stderr


def test_asgi_streaming_response_that_sent_its_head_is_cut_not_504(server_factory):
    srv = asgi(server_factory)
    assert_stream_cut(srv)


def test_asgi_except_exception_does_not_swallow_the_cancellation(server_factory):
    response = get(asgi(server_factory), "/swallow")
    assert response is not None and response.status == 504
    assert b"swallowed" not in response.body


@pytest.mark.parametrize("flags", [(), ("--request-timeout", "0")], ids=["absent", "zero"])
def test_asgi_off_when_absent_or_zero(server_factory, flags):
    srv = server_factory(ASGI_APP, *flags, worker_class="asgi")
    response = get(srv, "/nap")
    assert (response.status, response.body) == (200, b"woke\n"), srv.stderr
    assert "REQUEST TIMEOUT" not in srv.stderr


def test_asgi_fractional_deadline_and_requests_in_time(server_factory):
    srv = server_factory(ASGI_APP, "--request-timeout", "1.5", worker_class="asgi")
    for _ in range(3):
        assert get(srv, "/quick").status == 200
    assert get(srv, "/nap").status == 504
    srv.wait_log(r"REQUEST TIMEOUT GET /nap")
    assert "GET /quick" not in srv.stderr


def test_asgi_counts_a_timeout_as_the_wsgi_workers_do(server_factory, tmp_path):
    """The same access-log status and statsd counters as the sync worker's timeout."""
    from test_statsd import _Collector, _metrics, _receiver

    seen = {}
    for kind, app in (("sync", APP), ("asgi", ASGI_APP)):
        sock, address = _receiver("udp", tmp_path)
        collector = _Collector(sock)
        log = tmp_path / f"{kind}.access"
        flags = ("--request-timeout", "1", "--statsd-host", address, "--access-logfile", str(log))
        flags += ("--no-control-socket",)  # a warning (counted) if another server has it
        srv = server_factory(app, *flags, worker_class=kind)
        assert get(srv, "/stuck").status == 504
        lines = collector.wait(lambda got: any("status.504" in line for line in got))
        counters = {}
        for name, kind_, _, value in _metrics(lines):
            if kind_ == "c":
                counters[name] = counters.get(name, 0) + float(value)
        srv.stop()
        seen[kind] = (counters, log.read_text().split('"')[2].split()[0])
    assert seen["asgi"] == seen["sync"]
    assert seen["asgi"] == (
        {
            "gunicorn.log.error": 1.0,
            "gunicorn.log.exception": 1.0,
            "gunicorn.request.status.504": 1.0,
            "gunicorn.requests": 1.0,
        },
        "504",
    )
