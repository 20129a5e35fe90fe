"""New code without dropped requests: HUP, broken code on HUP, USR2 upgrades, ``--reload``.

The acceptance tests run a ``LoadClient`` (tests/loadclient.py) while the master replaces its
workers, or itself, and require that no request fails. Tests that edit the app copy
apps/supervised.py into their tmp_path and run it from there, so the repo is never edited;
every edit changes the file's length, since Python's .pyc check is mtime seconds plus size.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    LISTENING_RE,
    SUMMARY_LINES,
    TESTS_DIR,
    Client,
    build_request,
    child_pids,
    cmdline,
    pid_alive,
    read_pid,
    run_cli,
    wait_for,
)
from loadclient import LoadClient

APP = "supervised:app"  # the copy in tmp_path
REPO_APP = "apps.supervised:app"  # the file in the repo, for tests that do not edit it
SOURCE = TESTS_DIR / "apps" / "supervised.py"
FIRST = b"supervised body, first version\n"
SECOND = b"supervised body, the second version after an edit\n"
BOOT = 20.0  # bound for a generation of workers (or a new master) to boot
LOAD_SECONDS = 10.0
STOP_BOUND = 10.0  # exit after TERM, well under the --graceful-timeout of 30 s
HUPS = 5
RELOADED_RE = r"Reloaded: (\d+) workers of generation (\d+) serving"
RELOAD_FAILED_RE = (
    r"\[ERROR\] Reload failed: the new workers could not boot; the old workers keep serving"
)
LOAD_FAILED = "Failed to load the application"
# The exception line of a traceback, bare or behind a log line's prefix.
SYNTAX_ERROR_RE = re.compile(r"^(?:\[[^\]]*\] \[\d+\] \[\w+\] )?SyntaxError: ", re.M)
BROKEN_LINE = "\ndef broken_on_purpose(:\n    pass\n"


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async", "asgi"])
def reload_class(request) -> str:
    """The worker classes the reloads under load run on: the WSGI two and ``asgi``."""
    return request.param


def app_for(worker_class: str, app: str) -> str:
    """The supervised app's WSGI callable, or its ASGI one for ``-k asgi``."""
    return app.replace(":app", ":asgi") if worker_class == "asgi" else app


def copy_app(directory: Path) -> Path:
    path = directory / "supervised.py"
    shutil.copyfile(SOURCE, path)
    return path


def set_body(path: Path, body: bytes) -> None:
    """Rewrites the ``BODY = ...`` line of the pristine app (so a broken copy is fixed too)."""
    old = path.read_text()
    line = f"BODY = {body!r}"
    new = re.sub(r"^BODY = .*$", lambda _: line, SOURCE.read_text(), count=1, flags=re.M)
    assert line in new
    assert len(new) != len(old), "an edit must change the file's length"
    path.write_text(new)


def break_app(path: Path) -> None:
    old = path.read_text()
    path.write_text(old + BROKEN_LINE)


def hup(srv, workers: int) -> int:
    """HUP; waits for the new generation to serve; returns its number."""
    mark = srv.log_mark()
    srv.signal(signal.SIGHUP)
    srv.wait_log(r"Handling signal: hup", since=mark)
    srv.wait_log(r"Hang up: Master", since=mark)
    reloaded = srv.wait_log(RELOADED_RE, timeout=BOOT, since=mark)
    assert int(reloaded.group(1)) == workers, reloaded.group(0)
    return int(reloaded.group(2))


def wait_replaced(srv, old: set[int], workers: int) -> set[int]:
    """Waits until none of ``old`` is alive and ``workers`` others serve; returns them."""

    def replaced():
        live = set(srv.worker_pids())
        return live if len(live) == workers and not live & old else None

    wait_for(lambda: not any(pid_alive(p) for p in old), BOOT, f"old workers {old} to exit")
    return wait_for(replaced, BOOT, f"{workers} workers other than {old}")


def all_serving(srv, workers: int) -> set[int]:
    """Waits until ``workers`` different workers have answered: each has imported the app,
    so an edit from now on is new code (a worker logs its Booting line before the import).
    The requests are concurrent and slow, so a busy worker leaves the next to another."""
    seen: set[int] = set()

    def pid(_):
        response = srv.get("/pid?s=0.2")
        assert response is not None and response.status == 200, response
        return json.loads(response.body)["pid"]

    def answered():
        with ThreadPoolExecutor(workers) as pool:
            seen.update(pool.map(pid, range(workers)))
        return len(seen) >= workers

    wait_for(answered, BOOT, f"answers from {workers} workers")
    return seen


def assert_body(srv, body: bytes, count: int) -> None:
    for _ in range(count):
        response = srv.get("/")
        assert response is not None and (response.status, response.body) == (200, body), response


def assert_no_failures(result) -> None:
    assert result.failures == 0, result.samples
    assert result.connection_errors == 0, result.samples
    assert result.successes > 0, result.summary()


# --- HUP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 4])
def test_hup_under_load_drops_no_request(server_factory, reload_class, workers, tmp_path):
    """Five HUPs during 10 s of load from 4 threads: every request gets its whole 200. Then
    an edited app file and one more HUP: the new code is what the workers run."""
    worker_class = reload_class
    app = copy_app(tmp_path)
    srv = server_factory(
        app_for(worker_class, APP), workers=workers, worker_class=worker_class, cwd=tmp_path
    )
    first = set(srv.worker_pids())
    generations = []
    load = LoadClient(
        srv.address(),
        threads=4,
        duration=LOAD_SECONDS,
        keep_alive=worker_class != "sync",
        expect_body=FIRST,
    )
    with load:
        for _ in range(HUPS):
            generations.append(hup(srv, workers))
        reloads_under_load = load.running()
    result = load.result
    SUMMARY_LINES.append(
        f"HUP x{HUPS} under load, {worker_class}, {workers} workers: {result.summary()}"
        + ("" if reloads_under_load else " (the load ended before the last reload)")
    )
    assert_no_failures(result)
    assert generations == list(range(generations[0], generations[0] + HUPS)), generations
    wait_replaced(srv, first, workers)

    old = set(srv.worker_pids())
    set_body(app, SECOND)
    hup(srv, workers)
    wait_replaced(srv, old, workers)
    assert_body(srv, SECOND, 2 * workers)


def test_hup_with_broken_code_keeps_the_old_workers(server_factory, worker_class, tmp_path):
    """A syntax error in the app: each HUP logs the traceback once and gives up; the old
    workers serve every request meanwhile. Fixing the file and HUP again brings it in."""
    app = copy_app(tmp_path)
    srv = server_factory(APP, workers=2, worker_class=worker_class, cwd=tmp_path)
    old = all_serving(srv, 2)
    break_app(app)
    start = srv.log_mark()
    load = LoadClient(
        srv.address(),
        threads=2,
        duration=6.0,
        keep_alive=worker_class == "async",
        expect_body=FIRST,
    )
    with load:
        for _ in range(2):
            mark = srv.log_mark()
            srv.signal(signal.SIGHUP)
            srv.wait_log(RELOAD_FAILED_RE, timeout=BOOT, since=mark)
            text = srv.log_since(mark)
            assert text.count(LOAD_FAILED) == 1, text
            assert len(SYNTAX_ERROR_RE.findall(text)) == 1, text
            wait_for(lambda: set(srv.worker_pids()) == old, BOOT, "only the old workers")
        # The load runs to its end: time for a retried boot to show in the log.
    result = load.result
    SUMMARY_LINES.append(f"HUP x2 with a syntax error, {worker_class}: {result.summary()}")
    assert_no_failures(result)
    text = srv.log_since(start)
    assert text.count(LOAD_FAILED) == 2, text
    assert len(SYNTAX_ERROR_RE.findall(text)) == 2, text
    assert len(re.findall(RELOAD_FAILED_RE, text)) == 2, text
    assert set(srv.worker_pids()) == old

    set_body(app, SECOND)
    hup(srv, 2)
    wait_replaced(srv, old, 2)
    assert_body(srv, SECOND, 4)


def test_term_during_a_reload_stops_promptly(server_factory):
    """TERM just after HUP reaches workers that are still booting: they stop too, well
    within --graceful-timeout. Several rounds, since the moment of the TERM varies."""
    for _ in range(6):
        srv = server_factory(REPO_APP, "--graceful-timeout", "30", workers=2)
        mark = srv.log_mark()
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"Hang up: Master", since=mark)
        sent = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(STOP_BOUND) == 0, srv.stderr
        took = time.monotonic() - sent
        assert took < STOP_BOUND, f"exit took {took:.1f}s after TERM:\n{srv.stderr}"
        assert srv.leftovers() == []


def test_hup_with_preload_warns_that_code_needs_usr2(server_factory):
    srv = server_factory(REPO_APP, "--preload", workers=2)
    mark = srv.log_mark()
    srv.signal(signal.SIGHUP)
    srv.wait_log(r"Handling signal: hup", since=mark)
    srv.wait_log(r"\[WARNING\] .*USR2", since=mark)
    assert_body(srv, FIRST, 4)


def test_reload_with_preload_is_a_usage_error():
    out = run_cli("--reload", "--preload", "--bind", "127.0.0.1:0", REPO_APP, timeout=BOOT)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "preload" in lines[0].lower(), lines[0]


# --- USR2 -------------------------------------------------------------------------------------


def _new_master(srv, mark: int) -> int | None:
    """The pid of a master other than ``srv`` that logged its Listening at: line."""
    for match in LISTENING_RE.finditer(srv.log_since(mark)):
        if int(match.group(2)) != srv.pid:
            return int(match.group(2))
    return None


def _booted_children(srv, master: int, workers: int) -> set[int] | None:
    live = {pid for pid in child_pids(master) if pid_alive(pid)}
    booted = set(srv.booted_workers())
    return live if len(live) >= workers and live <= booted else None


def _upgrade(srv, workers: int) -> int:
    """USR2; waits for the new master and its workers; returns the new master's pid."""
    mark = srv.log_mark()
    srv.signal(signal.SIGUSR2)
    srv.wait_log(r"Handling signal: usr2", since=mark)
    new = wait_for(lambda: _new_master(srv, mark), BOOT, "the new master's Listening at: line")
    assert new in child_pids(srv.pid), "the new master is not a child of the old one"
    wait_for(
        lambda: cmdline(new).startswith("ferricorn: master ["),
        BOOT,
        f"the new master's title (now {cmdline(new)!r})",
    )
    listening = [m for m in LISTENING_RE.finditer(srv.log_since(mark)) if int(m.group(2)) == new]
    assert listening[0].group(1) == srv.listening()[0], "the new master listens elsewhere"
    wait_for(lambda: _booted_children(srv, new, workers), BOOT, "the new master's workers")
    return new


def _stop_new_master(pid: int | None) -> None:
    """Graceful TERM for the new master this test made; Server.stop's killpg is the backstop."""
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), BOOT, "the new master to exit")


def test_usr2_upgrade_under_load(server_factory, reload_class, tmp_path):
    """USR2, WINCH and TERM to the old master while clients keep sending: none fails, the
    pidfile ends with the new master, which goes on serving."""
    worker_class = reload_class
    pidfile = tmp_path / "ferricorn.pid"
    pidfile2 = tmp_path / "ferricorn.pid.2"
    app = app_for(worker_class, REPO_APP)
    srv = server_factory(app, "-p", str(pidfile), workers=2, worker_class=worker_class)
    wait_for(lambda: read_pid(pidfile) == srv.pid, BOOT, "the pidfile to hold the master")
    old_workers = set(srv.worker_pids())
    new = None
    try:
        load = LoadClient(
            srv.address(),
            threads=4,
            duration=60.0,  # a bound: the test stops it once the upgrade is over
            keep_alive=worker_class != "sync",
            expect_body=FIRST,
        )
        with load:
            new = _upgrade(srv, 2)
            wait_for(lambda: read_pid(pidfile2) == new, BOOT, f"{pidfile2} to hold the new pid")
            assert read_pid(pidfile) == srv.pid, "the pidfile changed while the old master lives"

            mark = srv.log_mark()
            srv.signal(signal.SIGWINCH)
            srv.wait_log(r"Handling signal: winch", since=mark)
            srv.wait_log(r"graceful stop of workers", since=mark)
            wait_for(
                lambda: not any(pid_alive(p) for p in old_workers), BOOT, "the old workers to stop"
            )
            assert pid_alive(new)
            srv.signal(signal.SIGTERM)
            assert srv.wait_exit() == 0, srv.stderr
            wait_for(lambda: read_pid(pidfile) == new, BOOT, "the pidfile to hold the new master")
            assert not pidfile2.exists()
            load.stop()
        result = load.result
        SUMMARY_LINES.append(f"USR2 upgrade under load, {worker_class}: {result.summary()}")
        assert_no_failures(result)
        assert pid_alive(new), "the new master died with the old one"
        doc = json.loads(srv.get("/pid").body)
        assert doc["ppid"] == new, doc
        _stop_new_master(new)
        wait_for(lambda: not pidfile.exists(), BOOT, "the new master to remove the pidfile")
    finally:
        _stop_new_master(new)


def test_term_of_the_old_master_keeps_the_new_masters_unix_socket(server_factory):
    directory = tempfile.mkdtemp(prefix="fc-")
    path = os.path.join(directory, "upgrade.sock")
    new = None
    try:
        srv = server_factory(REPO_APP, binds=(f"unix:{path}",))
        new = _upgrade(srv, 1)
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit() == 0, srv.stderr
        assert os.path.exists(path), "the old master unlinked the socket the new one serves"
        with Client(path) as client:
            client.send(build_request("GET", "/pid"))
            response = client.read_response()
        assert response is not None and response.status == 200, response
        assert json.loads(response.body)["ppid"] == new
    finally:
        _stop_new_master(new)
        shutil.rmtree(directory, ignore_errors=True)


# --- --reload ---------------------------------------------------------------------------------


def _served(srv, target: str, body: bytes) -> bool:
    response = srv.get(target)
    assert response is not None and response.status == 200, response
    return response.body == body


def test_reload_serves_an_edited_app_file(server_factory, worker_class, tmp_path):
    app = copy_app(tmp_path)
    srv = server_factory(APP, "--reload", workers=2, worker_class=worker_class, cwd=tmp_path)
    old = all_serving(srv, 2)
    mark = srv.log_mark()
    set_body(app, SECOND)
    edited = time.monotonic()
    srv.wait_log(r"Reloading: \S*supervised\.py modified", since=mark)
    wait_for(lambda: _served(srv, "/", SECOND), 10, "the edited body", interval=0.02)
    latency = time.monotonic() - edited
    SUMMARY_LINES.append(
        f"--reload, {worker_class}: edited body served {latency * 1000:.0f} ms after the write"
    )
    wait_replaced(srv, old, 2)
    assert_body(srv, SECOND, 4)


def test_reload_extra_file(server_factory, tmp_path):
    copy_app(tmp_path)
    extra = tmp_path / "extra.txt"
    extra.write_text("extra, first\n")
    srv = server_factory(
        APP,
        *("--reload", "--reload-extra-file", str(extra)),
        cwd=tmp_path,
        env={"SUPERVISED_EXTRA": str(extra)},
    )
    all_serving(srv, 1)
    assert srv.get("/extra").body == b"extra, first\n"
    mark = srv.log_mark()
    extra.write_text("extra, second and longer\n")
    srv.wait_log(r"Reloading: \S*extra\.txt modified", since=mark)
    wait_for(lambda: _served(srv, "/extra", b"extra, second and longer\n"), 10, "the new extra")


def test_reload_with_a_syntax_error_keeps_serving(server_factory, tmp_path):
    app = copy_app(tmp_path)
    srv = server_factory(APP, "--reload", workers=2, cwd=tmp_path)
    old = all_serving(srv, 2)
    mark = srv.log_mark()
    break_app(app)
    srv.wait_log(r"Reloading: \S*supervised\.py modified", since=mark)
    srv.wait_log(SYNTAX_ERROR_RE.pattern, timeout=BOOT, since=mark)
    # Two seconds of requests: the old code answers them all, and the error is not repeated.
    with LoadClient(srv.address(), threads=1, duration=2.0, expect_body=FIRST) as load:
        pass
    assert_no_failures(load.result)
    assert all(pid_alive(pid) for pid in old), "an old worker went away"
    text = srv.log_since(mark)
    assert len(SYNTAX_ERROR_RE.findall(text)) == 1, text

    mark = srv.log_mark()
    set_body(app, SECOND)
    srv.wait_log(r"Reloading: \S*supervised\.py modified", since=mark)
    wait_for(lambda: _served(srv, "/", SECOND), 10, "the fixed body")


def _cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _measurement_window(seconds: float) -> None:
    """A deliberate idle period to measure CPU over; nothing is being waited for."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def test_reload_master_is_idle_when_nothing_changes(server_factory, tmp_path):
    copy_app(tmp_path)
    srv = server_factory(APP, "--reload", workers=1, cwd=tmp_path)
    assert_body(srv, FIRST, 1)
    workers = srv.worker_pids()
    tick = os.sysconf("SC_CLK_TCK")
    before = [_cpu_ticks(pid) for pid in [srv.pid, *workers]]
    started = time.monotonic()
    _measurement_window(3.0)
    after = [_cpu_ticks(pid) for pid in [srv.pid, *workers]]
    wall = time.monotonic() - started
    master = 100 * (after[0] - before[0]) / tick / wall
    worker = 100 * sum(a - b for a, b in zip(after[1:], before[1:])) / tick / wall
    SUMMARY_LINES.append(
        f"--reload idle CPU over {wall:.1f}s: master {master:.1f}%, worker {worker:.1f}%"
    )
    assert master < 5, f"the master used {master:.1f}% CPU while idle with --reload"
