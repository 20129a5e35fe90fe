"""The master as a supervisor: signals, worker limits, systemd integration, process settings.

Reloading code and upgrading the binary under load live in test_reload.py. The app is
apps/supervised.py. Tests that log to a file (``--error-logfile``) have no ``Listening at:``
line on stderr to learn a port from, so they bind a port from ``free_port`` and read the
file instead.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import (
    START_TIMEOUT,
    TESTS_DIR,
    Client,
    build_request,
    cmdline,
    connect,
    ferricorn_command,
    fetch,
    free_port,
    pid_alive,
    read_pid,
    wait_for,
)
from loadclient import LoadClient

APP = "apps.supervised:app"
FIRST = b"supervised body, first version\n"
ACTIVATE = TESTS_DIR / "apps" / "supervised_activate.py"
PROMPT = 10.0  # bound for the master to act on a signal or a condition
LOG_PREFIX = r"\[[^\]]+\] \[(\d+)\] \[(\w+)\] "


# --- helpers ----------------------------------------------------------------------------------


def wait_file(path: Path, pattern: str, timeout: float = PROMPT):
    """Waits for a line matching ``pattern`` in the file at ``path``; returns the match."""
    regex = re.compile(pattern, re.M)

    def found():
        try:
            return regex.search(path.read_text(errors="replace"))
        except OSError:
            return None

    return wait_for(found, timeout, f"{pattern!r} in {path}")


def get(port: int, target: str, timeout: float = PROMPT):
    """A GET to a server whose port the test chose (no Listening line on stderr)."""
    return fetch(("127.0.0.1", port), build_request("GET", target), timeout=timeout)


def send_and_wait(srv, signum: int, name: str) -> int:
    """Sends a signal and waits for the master's ``Handling signal`` line; returns the mark."""
    mark = srv.log_mark()
    srv.signal(signum)
    srv.wait_log(rf"Handling signal: {name}$", since=mark)
    return mark


def worker_count(srv, count: int) -> list[int]:
    return wait_for(
        lambda: (pids := srv.worker_pids()) and len(pids) == count and pids,
        PROMPT,
        f"{count} workers",
    )


def request_in_background(address, target: str, timeout: float = 40.0):
    """Sends a request on a thread; returns (thread, box with "response" or "error")."""
    box = {}

    def run():
        try:
            box["response"] = fetch(address, build_request("GET", target), timeout=timeout)
        except Exception as exc:  # the assertion happens on the main thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def proc_status(pid: int) -> dict[str, list[str]]:
    doc = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        doc[key] = value.split()
    return doc


def run_lengths(values: list) -> list[int]:
    """Lengths of the runs of equal consecutive values."""
    runs: list[int] = []
    for i, value in enumerate(values):
        if i and value == values[i - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


# --- stopping: TERM, INT, QUIT ---------------------------------------------------------------


@pytest.mark.parametrize("fast", [signal.SIGINT, signal.SIGQUIT], ids=["int", "quit"])
def test_regression_int_right_after_term_makes_the_stop_fast(server_factory, fast):
    """TERM then INT (or QUIT) at once: the fast stop must win, as an INT during a graceful
    stop does. Both bytes used to be read from the signal pipe together, and the master,
    leaving for a graceful stop at the TERM, dropped the INT: it waited for the request in
    hand up to --graceful-timeout. Three rounds, since the two may be read apart."""
    for round_ in range(3):
        srv = server_factory(APP, "--graceful-timeout", "120", "--timeout", "0", workers=1)
        mark = srv.log_mark()
        token = f"stop-{round_}"
        thread, _ = request_in_background(srv.address(), f"/sleep?s=120&token={token}")
        srv.wait_log(rf"sleep start {token}", since=mark)
        os.kill(srv.pid, signal.SIGTERM)
        os.kill(srv.pid, fast)
        assert srv.wait_exit(PROMPT) == 0, srv.stderr
        assert srv.leftovers() == []
        thread.join(PROMPT)


# --- worker count: TTIN, TTOU -----------------------------------------------------------------


def test_ttin_and_ttou_change_the_worker_count(server_factory):
    srv = server_factory(APP, workers=2)
    send_and_wait(srv, signal.SIGTTIN, "ttin")
    worker_count(srv, 3)
    send_and_wait(srv, signal.SIGTTIN, "ttin")
    before = set(worker_count(srv, 4))
    mark = send_and_wait(srv, signal.SIGTTOU, "ttou")
    gone = before - set(worker_count(srv, 3))
    assert len(gone) == 1, gone
    srv.wait_log(rf"Worker exiting \(pid: {gone.pop()}\)", since=mark)
    for expected in (2, 1):
        send_and_wait(srv, signal.SIGTTOU, "ttou")
        worker_count(srv, expected)
    send_and_wait(srv, signal.SIGTTOU, "ttou")  # one worker left: never below one
    send_and_wait(srv, signal.SIGTTIN, "ttin")  # so this makes two, not one
    worker_count(srv, 2)
    for _ in range(4):
        assert srv.get("/").body == FIRST


# --- USR1: reopen the log ---------------------------------------------------------------------


def _worker_write_reaches(port: int, log: Path, worker: int, attempt: list[int]) -> bool:
    """One wsgi.errors write by ``worker``: True once it lands in the file at ``log``."""
    attempt[0] += 1
    token = f"after-usr1-{attempt[0]}"
    response = get(port, f"/errors?msg={token}")
    assert response.status == 200, response
    assert json.loads(response.body)["pid"] == worker
    try:
        return token in log.read_text()
    except OSError:
        return False


def test_usr1_reopens_the_error_log(server_factory, tmp_path):
    log = tmp_path / "error.log"
    moved = tmp_path / "error.log.1"
    port = free_port()
    srv = server_factory.spawn(
        ["--bind", f"127.0.0.1:{port}", "-w", "1", "--error-logfile", str(log), APP]
    )
    booted = wait_file(log, r"Booting worker with pid: (\d+)", START_TIMEOUT)
    worker = int(booted.group(1))
    assert json.loads(get(port, "/errors?msg=before-usr1").body)["pid"] == worker
    wait_file(log, r"^before-usr1$")
    log.rename(moved)
    srv.signal(signal.SIGUSR1)
    # The worker that was already running writes to the new file once it has reopened.
    attempt = [0]
    wait_for(
        lambda: _worker_write_reaches(port, log, worker, attempt),
        PROMPT,
        "the existing worker's wsgi.errors in the new file",
        interval=0.1,
    )
    srv.signal(signal.SIGTTIN)  # the master's lines, and a new worker's, in the new file
    handled = wait_file(log, rf"^{LOG_PREFIX}Handling signal: ttin$")
    assert handled.group(1) == str(srv.pid), handled.group(0)
    newcomer = wait_file(log, rf"Booting worker with pid: (?!{worker}\b)(\d+)")
    assert int(newcomer.group(1)) != worker
    old_text, new_text = moved.read_text(), log.read_text()
    assert "Listening at:" in old_text and "Listening at:" not in new_text
    assert "before-usr1" in old_text and "before-usr1" not in new_text
    assert (old_text + new_text).count("Handling signal: usr1") == 1
    assert "Booting worker" not in srv.stderr, "log lines on stderr with --error-logfile"


@pytest.mark.parametrize("flag", ["--error-logfile", "--log-file"])
def test_error_logfile_receives_the_log(server_factory, tmp_path, flag):
    log = tmp_path / "error.log"
    port = free_port()
    srv = server_factory.spawn(["--bind", f"127.0.0.1:{port}", flag, str(log), APP])
    wait_file(log, rf"Listening at: http://127\.0\.0\.1:{port} \({srv.pid}\)", START_TIMEOUT)
    wait_file(log, r"Booting worker with pid: \d+", START_TIMEOUT)
    assert get(port, "/errors?msg=into-the-file", START_TIMEOUT).status == 200
    wait_file(log, r"^into-the-file$")
    assert "Listening at:" not in srv.stderr
    assert "into-the-file" not in srv.stderr


def test_error_logfile_dash_is_stderr(server_factory):
    srv = server_factory(APP, "--error-logfile", "-")
    assert srv.get("/errors?msg=dash-to-stderr").status == 200
    srv.wait_log(r"^dash-to-stderr$")


# --- WINCH ------------------------------------------------------------------------------------


def answered_within(client: Client, seconds: float) -> bool:
    """True if the server answers or closes within ``seconds`` (a bounded negative check)."""
    try:
        return bool(wait_for(client.pending, seconds, "an answer", interval=0.02))
    except AssertionError:
        return False


def test_winch_stops_the_workers_and_hup_brings_them_back(server_factory):
    srv = server_factory(APP, workers=2)
    old = set(srv.worker_pids())
    mark = send_and_wait(srv, signal.SIGWINCH, "winch")
    srv.wait_log(r"graceful stop of workers", since=mark)
    wait_for(lambda: srv.worker_pids() == [], PROMPT, "every worker to stop")
    with Client(srv.address(), timeout=PROMPT) as client:  # the socket is still listening
        client.send(build_request("GET", "/"))
        # Bounded look: no worker comes back by itself to answer it.
        assert not answered_within(client, 1.0), "answered with no workers after WINCH"
        assert srv.worker_pids() == [], "workers came back without a HUP"
        send_and_wait(srv, signal.SIGHUP, "hup")
        response = client.read_response()
    assert response is not None and (response.status, response.body) == (200, FIRST), response
    assert not set(worker_count(srv, 2)) & old


# --- timeouts ---------------------------------------------------------------------------------


def test_timeout_kills_a_worker_stuck_in_a_request(server_factory, worker_class):
    extra = ["-t", "2"] + (["--threads", "1"] if worker_class == "async" else [])
    srv = server_factory(APP, *extra, worker_class=worker_class)
    (victim,) = srv.worker_pids()
    mark = srv.log_mark()
    thread, box = request_in_background(srv.address(), "/sleep?s=60&token=stuck")
    srv.wait_log(r"sleep start stuck", since=mark)
    srv.wait_log(
        rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{victim}\) handling GET /sleep\b",
        timeout=15,
        since=mark,
    )
    thread.join(20)
    assert "error" not in box, box
    response = box.get("response")
    assert response is not None and response.status == 500, response
    wait_for(lambda: not pid_alive(victim), PROMPT, "the stuck worker to be gone")
    (replacement,) = worker_count(srv, 1)
    assert replacement != victim
    srv.wait_log(rf"Booting worker with pid: {replacement}", since=mark)
    assert json.loads(srv.get("/pid").body)["pid"] == replacement


def test_timeout_kills_a_worker_stuck_outside_a_request(server_factory):
    """A stopped worker sends no heartbeat: it is reported and killed like a stuck one."""
    srv = server_factory(APP, "-t", "2")
    (victim,) = srv.worker_pids()
    mark = srv.log_mark()
    os.kill(victim, signal.SIGSTOP)  # a worker of the server this test started
    try:
        srv.wait_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{victim}\)$", timeout=15, since=mark)
        wait_for(lambda: not pid_alive(victim), PROMPT, "the stopped worker to be killed")
    finally:
        if pid_alive(victim):
            os.kill(victim, signal.SIGCONT)
    (replacement,) = worker_count(srv, 1)
    assert replacement != victim
    assert srv.get("/").body == FIRST


# --- worker limits ----------------------------------------------------------------------------


def _served_by(result) -> list[int]:
    return [json.loads(body)["pid"] for body in result.bodies]


def test_max_requests_replaces_the_worker(server_factory, worker_class):
    srv = server_factory(APP, "--max-requests", "100", worker_class=worker_class)
    with LoadClient(
        srv.address(),
        "/pid",
        threads=1,
        duration=60.0,
        requests=250,
        keep_alive=worker_class == "async",
        record=True,
    ) as load:
        pass
    result = load.result
    assert result.failures == 0 and result.connection_errors == 0, result.samples
    assert result.successes == 250, result.summary()
    pids = _served_by(result)
    assert run_lengths(pids) == [100, 100, 50], run_lengths(pids)
    for pid in dict.fromkeys(pids[:200]):  # the two workers that reached the limit
        srv.wait_log(rf"\[{pid}\] \[\w+\] Autorestarting worker after current request\.")
        wait_for(lambda p=pid: not pid_alive(p), PROMPT, f"worker {pid} to exit")


def test_max_requests_jitter_varies_each_workers_limit(server_factory):
    srv = server_factory(APP, "--max-requests", "10", "--max-requests-jitter", "10")
    with LoadClient(
        srv.address(), "/pid", threads=1, duration=60.0, requests=200, record=True
    ) as load:
        pass
    assert load.result.failures == 0 and load.result.connection_errors == 0, load.result.samples
    runs = run_lengths(_served_by(load.result))[:-1]  # the last worker has not hit its limit
    assert len(runs) >= 8, runs
    assert all(10 <= run <= 20 for run in runs), runs
    assert len(set(runs)) > 1, f"every worker got the same limit: {runs}"


def test_max_worker_memory_replaces_the_worker_after_its_request(server_factory):
    srv = server_factory(APP, "--max-worker-memory", "100")
    (victim,) = srv.worker_pids()
    mark = srv.log_mark()
    thread, box = request_in_background(srv.address(), "/alloc?mb=150&s=3&token=big")
    srv.wait_log(r"alloc done big", since=mark)
    over = srv.wait_log(
        rf"Worker \(pid:{victim}\) uses (\d+) MiB, over --max-worker-memory 100 MiB: replacing it",
        timeout=PROMPT,
        since=mark,
    )
    assert int(over.group(1)) > 100, over.group(0)
    thread.join(20)
    assert "error" not in box, box
    response = box.get("response")
    assert response is not None, "the request in flight got no answer"
    assert (response.status, response.body) == (200, b"allocated 150 MiB\n"), response
    wait_for(lambda: not pid_alive(victim), PROMPT, "the big worker to be replaced")
    (replacement,) = worker_count(srv, 1)
    srv.wait_log(rf"Booting worker with pid: {replacement}", since=mark)
    assert json.loads(srv.get("/pid").body)["pid"] == replacement


def test_sigkilled_worker_is_reported_and_replaced(server_factory, worker_class):
    srv = server_factory(APP, workers=2, worker_class=worker_class)
    before = set(srv.worker_pids())
    victim = min(before)
    mark = srv.log_mark()
    os.kill(victim, signal.SIGKILL)  # a worker of the server this test started
    srv.wait_log(rf"Worker \(pid:{victim}\) was sent SIGKILL! Perhaps out of memory\?", since=mark)
    replacement = wait_for(
        lambda: (set(srv.worker_pids()) - before) if len(srv.worker_pids()) == 2 else None,
        PROMPT,
        "a replacement worker",
    ).pop()
    srv.wait_log(rf"Booting worker with pid: {replacement}", since=mark)
    for _ in range(4):
        assert srv.get("/").body == FIRST


# --- systemd: socket activation, sd_notify ----------------------------------------------------


def test_socket_activation_serves_on_the_inherited_socket(server_factory):
    unused = free_port()
    args = ["--bind", f"127.0.0.1:{unused}", "-w", "1", APP]
    command = [sys.executable, str(ACTIVATE)] + ferricorn_command()
    srv = server_factory.spawn(args, command=command)
    found = wait_for(
        lambda: re.search(r"activation port: (\d+)", srv.stdout), START_TIMEOUT, "the port"
    )
    port = int(found.group(1))
    response = get(port, "/pid", START_TIMEOUT)  # queued in the backlog until a worker runs
    assert response is not None and response.status == 200, (response, srv.stderr)
    assert json.loads(response.body)["ppid"] == srv.pid
    with pytest.raises(OSError):
        connect(("127.0.0.1", unused), timeout=PROMPT).close()


def _notify_states(sock: socket.socket, states: list[str], count: int) -> list[str]:
    """Reads datagrams until ``count`` READY/RELOADING/STOPPING lines have arrived."""

    def more():
        sock.settimeout(0.2)
        try:
            datagram = sock.recv(4096)
        except socket.timeout:
            return len(states) >= count
        for line in datagram.decode().splitlines():
            if line.split("=", 1)[0] in ("READY", "RELOADING", "STOPPING"):
                states.append(line)
        return len(states) >= count

    wait_for(more, PROMPT, f"{count} sd_notify states (so far {states})", interval=0)
    return states


def test_notify_socket_gets_ready_reloading_stopping_in_order(server_factory):
    directory = tempfile.mkdtemp(prefix="fc-")  # short: AF_UNIX paths are limited
    path = os.path.join(directory, "notify")
    states: list[str] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(path)
            srv = server_factory(APP, workers=2, env={"NOTIFY_SOCKET": path})
            assert _notify_states(notify, states, 1) == ["READY=1"]
            send_and_wait(srv, signal.SIGHUP, "hup")
            assert _notify_states(notify, states, 3) == ["READY=1", "RELOADING=1", "READY=1"]
            srv.signal(signal.SIGTERM)
            assert _notify_states(notify, states, 4)[3:] == ["STOPPING=1"]
            assert srv.wait_exit() == 0, srv.stderr
            notify.setblocking(False)
            try:
                late = notify.recv(4096)
            except BlockingIOError:
                late = b""
            assert b"READY=1" not in late and b"RELOADING=1" not in late, late
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


# --- process settings -------------------------------------------------------------------------


def test_pidfile_holds_the_master_pid_and_is_removed(server_factory, tmp_path):
    pidfile = tmp_path / "master.pid"
    srv = server_factory(APP, "-p", str(pidfile))
    wait_for(lambda: read_pid(pidfile) == srv.pid, PROMPT, "the pidfile")
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit() == 0, srv.stderr
    assert not pidfile.exists(), "the pidfile outlived the master"


def _stop_daemon(pid: int | None) -> None:
    """Stops the daemon this test started (by its pid, checked to be ferricorn's master)."""
    if not pid or not pid_alive(pid) or "ferricorn" not in cmdline(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not pid_alive(pid), PROMPT, "the daemon to stop")
    except AssertionError:
        os.killpg(pid, signal.SIGKILL)  # its own session and group, made by -D
        raise


def test_daemon_detaches_and_serves(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    log = tmp_path / "daemon.log"
    port = free_port()
    args = ["-D", "--pid", str(pidfile), "--error-logfile", str(log)]
    args += ["-b", f"127.0.0.1:{port}", "-w", "1", APP]
    daemon = None
    try:
        launched = subprocess.Popen(
            ferricorn_command() + args,
            cwd=str(TESTS_DIR),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = launched.communicate(timeout=PROMPT)
        except subprocess.TimeoutExpired:
            os.killpg(launched.pid, signal.SIGKILL)  # the group this test started
            launched.communicate()
            message = "ferricorn -D did not return (or kept stdout/stderr open)"
            raise AssertionError(message) from None
        assert launched.returncode == 0, err
        daemon = wait_for(lambda: read_pid(pidfile), PROMPT, "the pidfile")
        assert daemon != launched.pid
        assert pid_alive(daemon)
        response = get(port, "/pid", START_TIMEOUT)
        assert response is not None and response.status == 200, response
        assert json.loads(response.body)["ppid"] == daemon
        wait_file(log, rf"Listening at: http://127\.0\.0\.1:{port} \({daemon}\)")
        os.kill(daemon, signal.SIGTERM)
        wait_for(lambda: not pid_alive(daemon), PROMPT, "the daemon to stop")
        wait_for(lambda: not pidfile.exists(), PROMPT, "the pidfile to be removed")
    finally:
        _stop_daemon(daemon or read_pid(pidfile))


# For -u: the workers import the app after dropping root, so it lives in a directory anyone
# can read, and imports nothing that is not already loaded (the interpreter's standard library
# may sit under a home directory that only root can read).
UID_APP = """import os


def app(environ, start_response):
    body = ("uid=%d gid=%d" % (os.getuid(), os.getgid())).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.parametrize("initgroups", [False, True], ids=["no-initgroups", "initgroups"])
def test_user_and_group_apply_to_the_workers(server_factory, initgroups):
    user, group = pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    directory = tempfile.mkdtemp(prefix="fc-")
    try:
        os.chmod(directory, 0o755)
        Path(directory, "uidapp.py").write_text(UID_APP)
        extra = ["-u", "nobody", "-g", "nogroup"] + (["--initgroups"] if initgroups else [])
        srv = server_factory("uidapp:app", *extra, workers=2, cwd=directory)
        response = srv.get("/")
        assert response is not None and response.status == 200, (response, srv.stderr)
        assert response.body == f"uid={user.pw_uid} gid={group.gr_gid}".encode()
        assert proc_status(srv.pid)["Uid"] == ["0"] * 4
        workers = srv.worker_pids()
        assert len(workers) == 2
        uid = [str(user.pw_uid)] * 4
        for worker in workers:
            # A worker logs its Booting line before it switches: wait for its boot to end.
            wait_for(lambda w=worker: proc_status(w)["Uid"] == uid, PROMPT, f"{worker}'s uid")
            status = proc_status(worker)
            assert status["Gid"] == [str(group.gr_gid)] * 4, status["Gid"]
            groups = {int(g) for g in status["Groups"]}
            assert 0 not in groups, f"the worker kept root's groups: {groups}"
            if initgroups:
                member_of = {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem}
                assert groups == member_of | {group.gr_gid}, groups
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("mask", ["0o077", "077"])
def test_umask_applies_to_the_unix_socket(server_factory, mask):
    directory = tempfile.mkdtemp(prefix="fc-")
    path = os.path.join(directory, "masked.sock")
    try:
        server_factory(APP, "-m", mask, binds=(f"unix:{path}",))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, oct(os.stat(path).st_mode)
        with Client(path) as client:
            client.send(build_request("GET", "/"))
            assert client.read_response().body == FIRST
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def test_worker_tmp_dir_holds_the_heartbeat_files(server_factory, tmp_path):
    directory = tmp_path / "heartbeat"
    directory.mkdir()
    srv = server_factory(APP, "--worker-tmp-dir", str(directory), workers=2)
    inside = os.path.realpath(directory) + "/"

    def deleted_mappings():
        maps = Path(f"/proc/{srv.pid}/maps").read_text().splitlines()
        return [line for line in maps if inside in line and line.endswith("(deleted)")]

    wait_for(deleted_mappings, PROMPT, f"a mapping of a deleted file in {directory}")
    assert srv.get("/").body == FIRST


def _listen_sockets(port: int) -> int:
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:  # 0A: LISTEN
            count += 1
    return count


def test_reuse_port_gives_each_worker_a_socket(server_factory):
    srv = server_factory(APP, "--reuse-port", workers=2)
    wait_for(lambda: _listen_sockets(srv.port) >= 3, PROMPT, "3 LISTEN sockets on the port")
    for _ in range(6):
        assert srv.get("/").body == FIRST


@pytest.mark.parametrize("name", [None, "billing"])
def test_process_titles(server_factory, name):
    srv = server_factory(APP, *(["-n", name] if name else []), workers=2)
    label = name or APP
    wait_for(
        lambda: cmdline(srv.pid).startswith(f"ferricorn: master [{label}]"),
        PROMPT,
        f"the master's title (now {cmdline(srv.pid)!r})",
    )
    for worker in srv.worker_pids():
        wait_for(
            lambda w=worker: cmdline(w).startswith(f"ferricorn: worker [{label}]"),
            PROMPT,
            f"worker {worker}'s title (now {cmdline(worker)!r})",
        )


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_preload_imports_the_app_in_the_master(server_factory, preload):
    srv = server_factory(APP, *(["--preload"] if preload else []), workers=2)
    for _ in range(4):
        doc = json.loads(srv.get("/pid").body)
        assert doc["ppid"] == srv.pid, doc
        assert doc["import_pid"] == (srv.pid if preload else doc["pid"]), doc
