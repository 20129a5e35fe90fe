"""statsd metrics, against a live gunicorn 27 on the same requests.

The test is the statsd agent: a UDP socket (or a unix datagram socket, for ``unix:`` paths)
that gunicorn and ferricorn, in turn, send to with the same flags. Both get the same five
requests (three 200s, a 404, and an app error that the server answers with a 500); the
lines each sent are parsed as ``NAME:VALUE|TYPE[|@RATE][|#TAGS]``. The set of (name, type,
rate, tags) must be the same for both; counters, whose values do not depend on the clock,
must add up the same (5 requests, 3 200s, one exception logged); timers are checked only
to be numbers.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

import pytest
from conftest import gunicorn_command, run_cli, start_server

APP = "apps.accesslog_app:app"
PATHS = ["/one", "/two", "/three", "/nowhere", "/boom"]
LINE = re.compile(
    r"^(?P<name>[^:]+):(?P<value>-?[0-9.]+)\|(?P<type>c|ms|g|h)(?P<rest>(\|[@#][^|]*)*)$"
)
DEADLINE = 15.0


def _receiver(kind: str, tmp_path):
    if kind == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return sock, f"127.0.0.1:{sock.getsockname()[1]}"
    path = tmp_path / "statsd.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock, f"unix:{path}"


class _Collector(threading.Thread):
    """Reads lines as they come (a unix datagram queue holds only a few, and gunicorn's
    sends block when it is full), until ``stop``."""

    def __init__(self, sock: socket.socket):
        super().__init__(daemon=True)
        self.sock = sock
        self.lines: list[str] = []
        self.running = True
        self.start()

    def run(self):
        self.sock.settimeout(0.05)
        while self.running:
            try:
                self.lines.append(self.sock.recv(65536).decode("ascii"))
            except TimeoutError:
                pass

    def wait(self, done) -> list[str]:
        """The lines, once ``done(lines)`` holds (then a little more, for stragglers)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not done(list(self.lines)):
            time.sleep(0.05)
        time.sleep(0.5)
        self.running = False
        self.join(5)
        return list(self.lines)


def _metrics(lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(name, type, rest, value) of each line; a line that does not parse fails the test."""
    parsed = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a statsd line: {line!r}"
        parsed.append((match["name"], match["type"], match["rest"], match["value"]))
    return parsed


def _counts(metrics) -> Counter:
    counts: Counter = Counter()
    for name, kind, _, value in metrics:
        if kind == "c":  # by the name without --statsd-prefix
            counts[name[name.index("gunicorn.") :]] += int(value)
    return counts


def _run(command, flags, sock, worker_class=None) -> list[tuple[str, str, str, str]]:
    """Starts a server with ``flags``, sends the five requests, stops it; its metrics."""
    collector = _Collector(sock)
    args = ["--no-control-socket", *flags]
    server = start_server(APP, *args, command=command, worker_class=worker_class)
    try:
        for path in PATHS:
            server.get(path)

        def done(lines):
            counts = _counts(_metrics(lines))
            return (
                counts["gunicorn.requests"] >= len(PATHS) and counts["gunicorn.log.exception"] >= 1
            )

        lines = collector.wait(done)
    finally:
        collector.running = False
        server.stop()
    return _metrics(lines)


def _shape(metrics) -> set[tuple[str, str, str]]:
    return {(name, kind, rest) for name, kind, rest, _ in metrics}


def _compare(gunicorn, ferricorn):
    assert _shape(ferricorn) == _shape(gunicorn)
    expected = {"gunicorn.requests": 5, "gunicorn.request.status.200": 3}
    expected |= {"gunicorn.request.status.404": 1, "gunicorn.request.status.500": 1}
    expected |= {"gunicorn.log.exception": 1}
    for name, count in expected.items():
        assert _counts(gunicorn)[name] == count, (name, gunicorn)
        assert _counts(ferricorn)[name] == count, (name, ferricorn)
    for name, kind, _, value in ferricorn:
        if kind == "ms":
            assert float(value) >= 0, name
        if name.endswith("gunicorn.workers"):
            assert value == "1"


WORKERS = ["sync", "async"]


@pytest.mark.parametrize("worker_class", WORKERS)
@pytest.mark.parametrize(
    "kind, extra",
    [
        ("udp", []),
        ("udp", ["--statsd-prefix", "web", "--dogstatsd-tags", "env:test,team:web"]),
        ("unix", ["--statsd-prefix", "app..."]),
    ],
    ids=["udp", "prefix+tags", "unix"],
)
def test_metrics_match_gunicorn(kind, extra, worker_class, tmp_path):
    sock, address = _receiver(kind, tmp_path)
    with sock:
        flags = ["--statsd-host", address, *extra]
        gunicorn = _run(gunicorn_command(), flags, sock)
        ferricorn = _run(None, flags, sock, worker_class=worker_class)
    _compare(gunicorn, ferricorn)
    names = {name for name, *_ in ferricorn}
    assert any(name.endswith("gunicorn.request.duration") for name in names)
    if "--dogstatsd-tags" in extra:
        assert all(rest.endswith("|#env:test,team:web") for _, _, rest, _ in ferricorn)
        assert all(name.startswith("web.gunicorn.") for name in names)
    if kind == "unix":
        assert all(name.startswith("app.gunicorn.") for name in names)


def test_backlog_metric_matches_gunicorn(tmp_path):
    sock, address = _receiver("udp", tmp_path)
    with sock:
        flags = ["--statsd-host", address, "--enable-backlog-metric"]
        gunicorn = _run(gunicorn_command(), flags, sock)
        ferricorn = _run(None, flags, sock)
    _compare(gunicorn, ferricorn)
    assert ("gunicorn.backlog", "h", "") in _shape(ferricorn)


def test_bad_statsd_host_is_one_line_and_exit_2():
    result = run_cli("--statsd-host", "localhost:port", APP)
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--statsd-host" in lines[0], result.stderr


def test_regression_statsd_config_file_starts_without_a_warning():
    """A gunicorn config file with statsd_host and statsd_prefix was one warning ("not
    supported yet"); now the settings apply."""
    result = run_cli("--check-config", "-c", "dropin/statsd_config.py", APP)
    assert result.returncode == 0, result.stderr
    assert "statsd" not in result.stderr, result.stderr
