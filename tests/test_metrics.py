"""`--metrics-bind`: the master's Prometheus endpoint, counted from the workers' shared pages.

The scrape is parsed with prometheus_client's own text parser; the counters are checked
across workers, a TTOU retirement, a --max-requests recycle and a --timeout kill; one test
scrapes ferricorn with a real Prometheus server and asks its HTTP API for the counter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import build_request, fetch, free_port, pid_alive, run_cli, wait_for
from prometheus_client.parser import text_string_to_metric_families

APP = "apps.metrics_app:app"
DEADLINE = 30.0


def scrape(port: int, accept: str | None = None) -> tuple[int, str, str]:
    """Status, content type and body of ``GET /metrics``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, parsed by prometheus_client: (name, labels) -> value."""
    _, _, text = scrape(port)
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def requests_total(port: int) -> float:
    return sum(v for (name, _), v in samples(port).items() if name == "ferricorn_requests_total")


def restarts(port: int, reason: str) -> float:
    return samples(port).get(("ferricorn_worker_restarts_total", (("reason", reason),)), 0)


def hit(srv, target: str = "/", n: int = 1) -> None:
    for _ in range(n):
        response = fetch(srv.address(), build_request("GET", target))
        assert response is not None and response.status == 200


def start(server_factory, *extra: str, workers: int = 1, worker_class: str | None = None):
    port = free_port()
    srv = server_factory(
        APP,
        "--metrics-bind",
        f"127.0.0.1:{port}",
        *extra,
        workers=workers,
        worker_class=worker_class,
    )
    wait_for(lambda: _answers(port), DEADLINE, "the metrics endpoint")
    return srv, port


def _answers(port: int) -> bool:
    try:
        return scrape(port)[0] == 200
    except OSError:
        return False


def test_scrape_parses_with_prometheus_client(server_factory, worker_class):
    srv, port = start(server_factory, worker_class=worker_class)
    hit(srv, n=3)
    # A response is counted as its access log line is written, just after its last byte.
    wait_for(lambda: requests_total(port) == 3, DEADLINE, "3 requests counted")
    status, kind, text = scrape(port)
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    types = {name: f.type for name, f in families.items()}
    assert types["ferricorn_requests"] == "counter"
    assert types["ferricorn_request_duration_seconds"] == "histogram"
    assert types["ferricorn_request_queue_seconds"] == "histogram"
    gauges = ["ferricorn_requests_in_flight", "ferricorn_workers", "ferricorn_threads"]
    gauges += ["ferricorn_connections", "ferricorn_worker_rss_bytes", "ferricorn_listen_backlog"]
    for gauge in gauges:
        assert types[gauge] == "gauge", gauge
    got = samples(port)
    assert got[("ferricorn_requests_total", (("method", "GET"), ("status_class", "2xx")))] == 3
    assert got[("ferricorn_request_duration_seconds_count", ())] == 3
    assert got[("ferricorn_request_queue_seconds_count", ())] == 3
    assert got[("ferricorn_received_bytes_total", ())] > 0
    assert got[("ferricorn_sent_bytes_total", ())] > 0
    pid = srv.worker_pids()[0]
    assert got[("ferricorn_worker_rss_bytes", (("pid", str(pid)),))] > 1 << 20
    assert got[("ferricorn_workers", (("state", "idle"),))] == 1


def test_openmetrics_when_asked(server_factory):
    _, port = start(server_factory)
    status, kind, text = scrape(port, accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and kind.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    assert "# TYPE ferricorn_requests counter" in text


def test_bad_scrapes_get_400_and_404_and_the_master_lives(server_factory):
    srv, port = start(server_factory)
    assert fetch(("127.0.0.1", port), b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").status == 404
    assert fetch(("127.0.0.1", port), b"\x00 nonsense\r\n\r\n").status == 400
    # A client that connects and says nothing does not hold the master up.
    with socket.create_connection(("127.0.0.1", port)):
        assert scrape(port)[0] == 200
        hit(srv)
    assert pid_alive(srv.proc.pid)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_regression_a_full_table_of_silent_scrapers_does_not_spin_the_master(server_factory):
    """16 silent clients fill the scrape table; the listener must then leave the master's
    poll, or poll returns at once for as long as they stay (the master spins)."""
    srv, port = start(server_factory)
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(18)]
    try:
        before, started = cpu_seconds(srv.proc.pid), time.monotonic()
        # The silent ones time out after 5 s; then the scrape behind them is answered.
        assert scrape(port)[0] == 200
        elapsed = time.monotonic() - started
        assert cpu_seconds(srv.proc.pid) - before < 0.5 * elapsed
    finally:
        for sock in silent:
            sock.close()


def test_requests_counted_across_two_workers_and_a_ttou(server_factory):
    srv, port = start(server_factory, workers=2)
    hit(srv, "/", 20)
    wait_for(lambda: requests_total(port) == 20, DEADLINE, "20 requests counted")
    before = set(srv.worker_pids())
    srv.signal(signal.SIGTTOU)
    wait_for(lambda: len(srv.worker_pids()) == 1, DEADLINE, "one worker to retire")
    assert len(before - set(srv.worker_pids())) == 1
    wait_for(lambda: restarts(port, "retire") == 1, DEADLINE, "the retirement counted")
    assert requests_total(port) == 20, "the retired worker's requests are kept"
    hit(srv, "/", 5)
    wait_for(lambda: requests_total(port) == 25, DEADLINE, "25 requests counted")


def test_restarts_count_max_requests_and_timeout(server_factory):
    srv, port = start(server_factory, "--max-requests", "3", "--timeout", "2")
    hit(srv, "/", 3)
    wait_for(lambda: restarts(port, "max_requests") == 1, DEADLINE, "the recycle counted")
    srv.wait_ready()
    response = fetch(srv.address(), build_request("GET", "/sleep?s=30"), timeout=DEADLINE)
    assert response is None or response.status >= 500
    wait_for(lambda: restarts(port, "timeout") == 1, DEADLINE, "the timeout kill counted")
    assert restarts(port, "crash") == 0
    assert restarts(port, "max_requests") == 1


def test_metrics_bind_bad_address_is_one_line_exit_2(tmp_path):
    result = run_cli("--metrics-bind", "nohost", APP)
    assert result.returncode == 2
    assert "--metrics-bind" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    config = tmp_path / "conf.py"
    config.write_text("metrics_bind = 'bad:address:x'\n")
    result = run_cli("-c", str(config), APP)
    assert result.returncode == 2 and "--metrics-bind" in result.stderr


# --- a real Prometheus server ------------------------------------------------------------------


def _prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    if found is None and os.environ.get("CI"):
        pytest.fail("CI must have prometheus (the Makefile installs it with apt-get)")
    return found


def test_a_real_prometheus_scrapes_the_request_counter(server_factory):
    binary = _prometheus_binary()
    if binary is None:
        pytest.skip("the prometheus binary is absent (Debian: apt-get install -y prometheus)")
    srv, port = start(server_factory)
    hit(srv, "/", 7)
    wait_for(lambda: requests_total(port) == 7, DEADLINE, "7 requests counted")
    prom_port = free_port()
    with tempfile.TemporaryDirectory() as data:
        config = Path(data) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: ferricorn\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}/tsdb",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            query = urllib.parse.urlencode({"query": "sum(ferricorn_requests_total)"})
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?{query}"

            def value():
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        result = json.load(response)["data"]["result"]
                except (OSError, ValueError, KeyError):
                    return None
                return float(result[0]["value"][1]) if result else None

            wait_for(lambda: value() is not None, 60.0, "Prometheus to scrape ferricorn")
            assert value() == 7
        finally:
            proc.terminate()
            proc.wait(timeout=20)
