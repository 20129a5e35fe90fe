"""The control socket (issue 11, item 6): gunicorn 27's own ``gunicornc`` drives ferricorn.

Every command runs the real client from the venv as a subprocess (``gunicornc -s PATH -c
COMMAND -j``), against ferricorn and against a live gunicorn 27 in the same test, and the
answers' structure (their keys, nested) is compared. Worker pids are checked against the
master's real children. The hostile-client tests speak the framing by hand (4-byte
big-endian length, JSON) and check that the master still serves HTTP and other clients.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    START_TIMEOUT,
    gunicorn_command,
    pid_alive,
    run_cli,
    start_server,
    wait_for,
)

APP = "apps.echo:app"
GUNICORNC = str(Path(sys.executable).parent / "gunicornc")
SERVERS = ["ferricorn", "gunicorn"]


def start(kind: str, *extra: str, workers: int = 2, env: dict[str, str] | None = None):
    command = gunicorn_command() if kind == "gunicorn" else None
    return start_server(APP, *extra, workers=workers, env=env, command=command)


def run_ctl(sock: Path, command: str):
    """One ``gunicornc`` run: (returncode, stdout, stderr)."""
    done = subprocess.run(
        [GUNICORNC, "-s", str(sock), "-c", command, "-j"],
        capture_output=True,
        text=True,
        timeout=SOCKET_TIMEOUT + 5,
    )
    return done.returncode, done.stdout, done.stderr


def ctl(sock: Path, command: str) -> dict:
    """The JSON answer to ``command``. gunicorn's own server closes and rebinds its socket
    around every fork, so a failed connect is retried (under a deadline)."""

    def attempt():
        code, out, err = run_ctl(sock, command)
        if code == 0:
            return [json.loads(out)]
        assert "Failed to connect" in err, (command, code, err)
        return None

    return wait_for(attempt, START_TIMEOUT, f"gunicornc -c {command!r}", interval=0.05)[0]


def structure(value):
    """The keys of an answer, nested; a list by its first item; scalars as None."""
    if isinstance(value, dict):
        return {key: structure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [structure(value[0])] if value else []
    return None


def worker_pids(sock: Path) -> set[int]:
    return {w["pid"] for w in ctl(sock, "show workers")["workers"]}


def settle(srv, sock: Path, count: int) -> set[int]:
    """Waits until the master has ``count`` children and ``show workers`` lists exactly them."""

    def agreed():
        real = set(srv.worker_pids())
        return real if len(real) == count and worker_pids(sock) == real else None

    return wait_for(agreed, START_TIMEOUT, f"{count} workers, listed by show workers")


def drive(kind: str, tmp_path: Path) -> dict:
    """The acceptance sequence on one server; returns each command's answer structure."""
    sock = tmp_path / f"{kind}.ctl"
    srv = start(kind, "--control-socket", str(sock))
    shapes = {}
    try:
        first = settle(srv, sock, 2)
        answer = ctl(sock, "show workers")
        assert answer["count"] == 2 and {w["pid"] for w in answer["workers"]} == first
        assert [w["age"] for w in answer["workers"]] == sorted(w["age"] for w in answer["workers"])
        shapes["show workers"] = structure(answer)
        added = ctl(sock, "worker add 1")
        assert added == {"added": 1, "previous": 2, "total": 3}, added
        shapes["worker add"] = structure(added)
        assert first < settle(srv, sock, 3)
        removed = ctl(sock, "worker remove")
        assert removed == {"removed": 1, "previous": 3, "total": 2}, removed
        shapes["worker remove"] = structure(removed)
        kept = settle(srv, sock, 2)
        stats = ctl(sock, "show stats")
        assert stats["pid"] == srv.pid and stats["workers_target"] == 2, stats
        assert stats["workers_spawned"] == 3 and stats["reloads"] == 0, stats
        assert stats["workers_killed"] >= 1 and stats["dirty_arbiter_pid"] is None, stats
        shapes["show stats"] = structure(stats)
        for command in ["show config", "show listeners", "show all", "show dirty", "help"]:
            shapes[command] = structure(ctl(sock, command))
        config = ctl(sock, "show config")
        assert config["workers"] == 2 and config["control_socket"] == str(sock), config
        listeners = ctl(sock, "show listeners")["listeners"]
        assert [(x["address"], x["type"]) for x in listeners] == [
            (f"http://127.0.0.1:{srv.port}", "tcp")
        ]
        gone = ctl(sock, "worker kill 1")
        assert gone == {"success": False, "error": "Worker 1 not found"}, gone
        shapes["worker kill"] = structure(gone)
        assert ctl(sock, "reload") == {"status": "reloading"}
        fresh = wait_for(
            lambda: (pids := settle(srv, sock, 2)).isdisjoint(kept) and pids,
            START_TIMEOUT,
            "a new set of workers after reload",
        )
        assert srv.get("/").status == 200
        assert ctl(sock, "show stats")["reloads"] == 1
        code, _, err = run_ctl(sock, "bogus")
        assert code == 1 and "Unknown command: bogus" in err, err
        assert ctl(sock, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
        assert srv.wait_exit() == 0
        assert not any(pid_alive(pid) for pid in fresh)
        assert not sock.exists(), "the socket file is removed on exit"
    finally:
        srv.stop()
    return shapes


def test_gunicornc_drives_ferricorn_as_it_drives_gunicorn(tmp_path):
    ours, theirs = drive("ferricorn", tmp_path), drive("gunicorn", tmp_path)
    assert set(ours) == set(theirs)
    for command in ours:
        assert ours[command] == theirs[command], command


def home_env(tmp_path: Path, xdg: Path | None = None) -> dict[str, str]:
    env = {"HOME": str(tmp_path)}
    env["XDG_RUNTIME_DIR"] = str(xdg) if xdg else ""
    return env


@pytest.mark.parametrize("kind", SERVERS)
def test_default_socket_is_gunicorns_path(tmp_path, kind):
    home = tmp_path / "home"
    home.mkdir()
    srv = start(kind, workers=1, env=home_env(home))
    try:
        sock = home / ".gunicorn" / "gunicorn.ctl"
        wait_for(sock.exists, START_TIMEOUT, "the default control socket")
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert ctl(sock, "show stats")["pid"] == srv.pid
    finally:
        srv.stop()
    run = tmp_path / "run"
    run.mkdir()
    srv = start(kind, workers=1, env=home_env(home, run))
    try:
        sock = run / "gunicorn.ctl"
        assert ctl(sock, "show stats")["pid"] == srv.pid
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", SERVERS)
def test_no_control_socket_creates_no_file(tmp_path, kind):
    srv = start(kind, "--no-control-socket", workers=1, env=home_env(tmp_path, tmp_path))
    try:
        assert srv.get("/").status == 200
        assert not (tmp_path / "gunicorn.ctl").exists()
        assert not (tmp_path / ".gunicorn").exists()
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("mode", ["0660", "0o660", "432"])
def test_control_socket_mode(tmp_path, kind, mode):
    sock = tmp_path / "m.ctl"
    srv = start(kind, "--control-socket", str(sock), "--control-socket-mode", mode, workers=1)
    try:
        ctl(sock, "show stats")
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    finally:
        srv.stop()


def test_a_bad_control_socket_mode_is_one_line_and_exit_2():
    done = run_cli("--control-socket-mode", "0o99", APP)
    assert done.returncode == 2, done
    assert "--control-socket-mode" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def raw_client(sock: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(SOCKET_TIMEOUT)
    client.connect(str(sock))
    return client


def closed_without_answer(client: socket.socket, timeout: float = SOCKET_TIMEOUT) -> bool:
    client.settimeout(timeout)
    try:
        return client.recv(100) == b""
    finally:
        client.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_frame_that_is_not_a_request_closes_without_answer(tmp_path, kind):
    sock = tmp_path / "j.ctl"
    srv = start(kind, "--control-socket", str(sock), workers=1)
    try:
        ctl(sock, "show stats")
        for body in [b"not json", b"[1, 2]", b'{"command": 5}']:
            client = raw_client(sock)
            client.sendall(struct.pack(">I", len(body)) + body)
            assert closed_without_answer(client), body
        client = raw_client(sock)
        client.sendall(struct.pack(">I", 2) + b"{}")
        length = struct.unpack(">I", client.recv(4))[0]
        reply = json.loads(client.recv(length))
        assert reply == {"id": 0, "status": "error", "error": "Empty command"}, reply
        client.close()
        assert ctl(sock, "show stats")["pid"] == srv.pid
    finally:
        srv.stop()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_hostile_control_clients_never_block_the_master(tmp_path):
    sock = tmp_path / "h.ctl"
    srv = start("ferricorn", "--control-socket", str(sock), workers=1)
    try:
        ctl(sock, "show stats")
        garbage = raw_client(sock)
        garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")  # "GET " is a 1.2 GB length
        oversize = raw_client(sock)
        oversize.sendall(struct.pack(">I", 0x7FFFFFFF) + b"{")
        half = raw_client(sock)
        half.sendall(struct.pack(">I", 100) + b'{"id": 1, "comm')
        flood = raw_client(sock)  # asks and asks and never reads its answers
        flood.setblocking(False)
        request = json.dumps({"id": 1, "command": "show config"}).encode()
        frame = struct.pack(">I", len(request)) + request
        deadline = time.monotonic() + 2  # until the master, its answers unread, stops reading
        while time.monotonic() < deadline:
            try:
                flood.send(frame)
            except BlockingIOError:
                time.sleep(0.01)
        assert closed_without_answer(garbage)
        assert closed_without_answer(oversize)
        assert srv.get("/").status == 200
        assert ctl(sock, "show stats")["pid"] == srv.pid
        assert ctl(sock, "worker add 1")["total"] == 2  # a fork while `half` is connected
        wait_for(lambda: len(srv.worker_pids()) == 2, START_TIMEOUT, "the added worker")
        # A frame begun and never finished is given up after a bounded stall (10 s); the
        # worker forked meanwhile does not hold the connection open. The master does not
        # spin meanwhile on the flood's unread answers (it would use the whole wait).
        spent = cpu_seconds(srv.pid)
        waited = time.monotonic()
        assert closed_without_answer(half, timeout=20)
        assert cpu_seconds(srv.pid) - spent < (time.monotonic() - waited) / 2
        flood.close()
        assert srv.proc.poll() is None
        silent = [raw_client(sock) for _ in range(40)]  # more than the master serves at once
        assert srv.get("/").status == 200
        assert ctl(sock, "show workers")["count"] == 2
        for client in silent:
            client.close()
        assert ctl(sock, "show workers")["count"] == 2
    finally:
        srv.stop()


def test_a_live_servers_socket_is_left_to_it_and_a_stale_one_replaced(tmp_path):
    sock = tmp_path / "shared.ctl"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nothing listens: stale
    first = start("ferricorn", "--control-socket", str(sock), workers=1)
    try:
        assert ctl(sock, "show stats")["pid"] == first.pid
        second = start("ferricorn", "--control-socket", str(sock), workers=1)
        try:
            second.wait_log(r"Failed to start control socket at .*another live server")
            assert ctl(sock, "show stats")["pid"] == first.pid
        finally:
            second.stop()
        assert ctl(sock, "show stats")["pid"] == first.pid, "the second one left it in place"
    finally:
        first.stop()
    assert not sock.exists()
    sock.write_text("not a socket")
    srv = start("ferricorn", "--control-socket", str(sock), workers=1)
    try:
        srv.wait_log(r"Failed to start control socket at .*not a socket")
        assert srv.get("/").status == 200
    finally:
        srv.stop()
    assert sock.read_text() == "not a socket"


def test_usr2_new_master_takes_the_socket_and_the_old_one_leaves_it(tmp_path):
    """gunicorn 27 loses its control socket here: the old master's exit removes the new
    master's file. ferricorn's old master removes the file only while it is its own."""
    sock = tmp_path / "u.ctl"
    old = start("ferricorn", "--control-socket", str(sock), workers=1)
    new_pid = None
    try:
        assert ctl(sock, "show stats")["pid"] == old.pid
        old.signal(signal.SIGUSR2)
        new_pid = wait_for(
            lambda: (pid := ctl(sock, "show stats")["pid"]) != old.pid and pid,
            START_TIMEOUT,
            "the new master on the control socket",
        )
        old.signal(signal.SIGTERM)
        assert old.wait_exit() == 0
        assert ctl(sock, "show stats")["pid"] == new_pid
        assert ctl(sock, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
        wait_for(lambda: not pid_alive(new_pid), START_TIMEOUT, "the new master to exit")
        assert not sock.exists()
    finally:
        if new_pid and pid_alive(new_pid):
            os.kill(new_pid, signal.SIGKILL)
        old.stop()


def test_an_aborted_usr2_gives_the_socket_back_to_the_old_master(tmp_path):
    sock = tmp_path / "a.ctl"
    old = start("ferricorn", "--control-socket", str(sock), workers=1)
    try:
        old.signal(signal.SIGUSR2)
        new_pid = wait_for(
            lambda: (pid := ctl(sock, "show stats")["pid"]) != old.pid and pid,
            START_TIMEOUT,
            "the new master on the control socket",
        )
        os.kill(new_pid, signal.SIGTERM)
        wait_for(
            lambda: sock.exists() and ctl(sock, "show stats")["pid"] == old.pid,
            START_TIMEOUT,
            "the old master back on the control socket",
        )
        deadline = time.monotonic() + START_TIMEOUT
        while pid_alive(new_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        old.stop()
