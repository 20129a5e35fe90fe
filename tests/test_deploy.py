"""docs/deploy.md's systemd units, run the way systemd runs them.

The test reads the socket and service units from the guide, binds the socket the
`ListenStream=` line names (under a temporary directory), starts the `ExecStart=` command
with it passed as systemd passes it (fd 3, `LISTEN_FDS=1`, `LISTEN_PID` = the service's
pid) and `NOTIFY_SOCKET` pointed at a datagram socket of the test, then runs `ExecReload=`
and stops the service as `KillMode=mixed` does (TERM to the main process).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import REPO_ROOT, SOCKET_TIMEOUT, ferricorn_command, wait_for

GUIDE = (REPO_ROOT / "docs" / "deploy.md").read_text()
TEST_APP = "apps.echo:app"


def unit(name: str) -> dict[str, str]:
    """The `key=value` lines of the ```ini block that follows the unit's file name."""
    match = re.search(rf"`/etc/systemd/system/{re.escape(name)}`:\s*```ini\n(.*?)```", GUIDE, re.S)
    assert match, f"docs/deploy.md has no {name} unit"
    lines = [line.strip() for line in match.group(1).splitlines()]
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def service_command(service: dict[str, str]) -> list[str]:
    """ExecStart with this checkout's ferricorn and the test app in place of the project's."""
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/ferricorn"), argv
    assert "myproject.wsgi" in argv, argv
    return ferricorn_command() + [TEST_APP if a == "myproject.wsgi" else a for a in argv[1:]]


def notifications(sock: socket.socket, want: str, seen: list[str]) -> bool:
    """Collects datagrams from the notify socket; true once one has the line `want`."""
    while True:
        try:
            seen.append(sock.recv(4096).decode())
        except BlockingIOError:
            return any(want in message.splitlines() for message in seen)


def http_get_unix(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(SOCKET_TIMEOUT)
        client.connect(path)
        client.sendall(b"GET /deploy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    return data


def test_documented_units_run_under_systemd_protocols(tmp_path):
    socket_unit, service = unit("myapp.socket"), unit("myapp.service")
    assert service["Type"] == "notify" and service["NotifyAccess"] == "all"
    assert service["KillMode"] == "mixed"
    listen_path = tmp_path / Path(socket_unit["ListenStream"]).name
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(listen_path))
    listener.listen(128)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    fd = listener.fileno()
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"'
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "stderr", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["sh", "-c", script, "sh", *service_command(service)],
        cwd=str(REPO_ROOT / "tests"),
        env=env,
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(fd, 3),  # systemd's first socket is fd 3
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    listener.close()  # systemd keeps its copy; ours is no longer needed
    seen: list[str] = []
    try:
        wait_for(lambda: notifications(notify, "READY=1", seen), 30, "READY=1")
        assert b"200 OK" in http_get_unix(str(listen_path))
        reload = shlex.split(service["ExecReload"].replace("$MAINPID", str(proc.pid)))
        subprocess.run(reload, check=True, timeout=10)
        wait_for(lambda: notifications(notify, "RELOADING=1", seen), 30, "RELOADING=1")
        # The messages after RELOADING=1 (its READY=1 may have come in the same read).
        reloading = [i for i, m in enumerate(seen) if "RELOADING=1" in m.splitlines()]
        after_reload = reloading[0] + 1
        wait_for(
            lambda: (
                notifications(notify, "READY=1", seen)
                and any("READY=1" in m.splitlines() for m in seen[after_reload:])
            ),
            30,
            "READY=1 after the reload",
        )
        assert b"200 OK" in http_get_unix(str(listen_path))
        proc.send_signal(signal.SIGTERM)  # KillMode=mixed: TERM to the main process only
        stop_limit = int(service["TimeoutStopSec"])
        started = time.monotonic()
        assert proc.wait(stop_limit) == 0
        wait_for(lambda: notifications(notify, "STOPPING=1", seen), 5, "STOPPING=1")
        assert time.monotonic() - started <= stop_limit
        assert listen_path.exists(), "ferricorn removed systemd's socket"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        notify.close()
    lines = [line for message in seen for line in message.splitlines()]
    order = [line for line in lines if line in ("READY=1", "RELOADING=1", "STOPPING=1")]
    assert order == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], (
        order,
        (tmp_path / "stderr").read_text(),
    )
