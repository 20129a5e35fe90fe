"""Queue time: `--max-queue-time` answers 503 to a request that waited too long for the app,
and the environ's ``mod_wsgi.queue_start`` says when the request started to queue."""

from __future__ import annotations

import json
import threading

from conftest import build_request, fetch, wait_for

APP = "apps.metrics_app:app"


def slow_in_background(address, seconds: float) -> dict:
    box: dict = {}

    def run():
        box["response"] = fetch(address, build_request("GET", f"/sleep?s={seconds}"), timeout=30)

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def test_a_request_that_waited_past_max_queue_time_gets_503(server_factory):
    # Two app threads, both busy for 3 s: the third request waits for one, past 1 s.
    srv = server_factory(
        APP,
        "--threads",
        "2",
        "--max-queue-time",
        "1",
        "--access-logfile",
        "-",
        worker_class="async",
    )
    slow = [slow_in_background(srv.address(), 3) for _ in range(2)]
    wait_for(lambda: srv.stderr.count("sleep start") == 2, 10, "both threads busy")
    queued = fetch(srv.address(), build_request("GET", "/"), timeout=30)
    assert queued is not None and queued.status == 503
    assert "close" in (queued.header("Connection") or "").lower()
    for box in slow:
        box["thread"].join(30)
        assert box["response"].status == 200, "the requests that got a thread ran"
    srv.wait_log(r"over --max-queue-time: answered 503")
    wait_for(lambda: '"GET / HTTP/1.1" 503' in srv.stdout, 10, "the 503 in the access log")
    # With the threads free again, a request runs.
    assert fetch(srv.address(), build_request("GET", "/")).status == 200


def test_no_503_when_nothing_waits(server_factory, worker_class):
    srv = server_factory(APP, "--max-queue-time", "1", worker_class=worker_class)
    for _ in range(5):
        assert fetch(srv.address(), build_request("GET", "/")).status == 200


def test_environ_has_the_queue_start_in_microseconds(server_factory, worker_class):
    srv = server_factory(APP, worker_class=worker_class)
    response = fetch(srv.address(), build_request("GET", "/start"))
    doc = json.loads(response.body)
    start = int(doc["queue_start"]) / 1e6
    assert 0 <= doc["now"] - start < 5, doc
    assert doc["request_start"] is None, "no X-Request-Start header is made up"


def test_a_proxy_sent_x_request_start_is_never_overwritten(server_factory, worker_class):
    srv = server_factory(APP, worker_class=worker_class)
    raw = build_request("GET", "/start", headers=[("X-Request-Start", "t=1234567890123")])
    doc = json.loads(fetch(srv.address(), raw).body)
    assert doc["request_start"] == "t=1234567890123"
    assert doc["queue_start"].isdigit()
