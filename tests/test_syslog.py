"""``--log-syslog``, against a live gunicorn 27 and a syslog receiver the test opens.

The receiver is a UDP socket on 127.0.0.1 or a unix datagram socket in ``tmp_path``: what
rsyslog would read. gunicorn and ferricorn run with the same flags and get the same request;
each line they send is split into its PRI, its tag (``gunicorn.PREFIX.error`` or
``.access``) and its message, and the two servers must send the same PRI and tag for the
worker's boot line and the access line (or no access line with
``--disable-redirect-access-to-syslog``). Timestamps and pids differ and are not compared;
that each line carries the pid of the process that logged it is checked on its own.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    gunicorn_command,
    run_cli,
    start_server,
    wait_for,
)

APP = "apps.echo:app"
GUNICORN = gunicorn_command()
EXIT_USAGE = 2
LINE_RE = re.compile(r"<(\d+)>(\S+): \[(\d+)\] (.*)", re.DOTALL)
PROBE = "/syslog-probe"


class Receiver:
    """A datagram socket standing in for syslogd; ``lines()`` holds all it has received."""

    def __init__(self, family: int, address):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[tuple[int, str, int, str]] = []

    def lines(self) -> list[tuple[int, str, int, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.received
            text = data.decode()
            assert text.endswith("\0"), text  # Python's SysLogHandler appends a NUL
            match = LINE_RE.fullmatch(text[:-1])
            assert match, text
            pri, tag, pid, message = match.groups()
            self.received.append((int(pri), tag, int(pid), message))

    def close(self):
        self.sock.close()


def udp_receiver(_tmp_path) -> tuple[Receiver, str]:
    receiver = Receiver(socket.AF_INET, ("127.0.0.1", 0))
    return receiver, f"udp://127.0.0.1:{receiver.sock.getsockname()[1]}"


def unix_receiver(tmp_path, suffix: str = "#dgram") -> tuple[Receiver, str]:
    path = tmp_path / "log"
    path.unlink(missing_ok=True)
    return Receiver(socket.AF_UNIX, str(path)), f"unix://{path}{suffix}"


def booting(lines):
    return [line for line in lines if "Booting worker with pid" in line[3]]


def access(lines):
    return [line for line in lines if line[1].endswith(".access")]


def exchange_lines(command, receiver: Receiver, args: list[str]) -> list:
    """One server's lines: boot, one request, stop; ``(pri, tag, message kind)`` each."""
    server = start_server(APP, "--no-control-socket", *args, command=command)
    try:
        wait_for(lambda: booting(receiver.lines()), SOCKET_TIMEOUT, "the boot line")
        response = server.get(PROBE)
        assert response is not None and response.status == 200
        if "--disable-redirect-access-to-syslog" not in args:
            wait_for(lambda: access(receiver.lines()), SOCKET_TIMEOUT, "the access line")
    finally:
        server.stop()
    # The master's last line comes after every worker has exited, so after their lines.
    wait_for(
        lambda: any("Shutting down" in m for *_, m in receiver.lines()),
        SOCKET_TIMEOUT,
        "the shutdown line",
    )
    lines = receiver.lines()
    receiver.received = []
    master = server.proc.pid
    workers = {int(m.rsplit(" ", 1)[1]) for *_, m in booting(lines)}
    for *_, pid, message in lines:
        assert pid in workers | {master}, (pid, message)
    for *_, message in access(lines):
        assert f'"GET {PROBE} HTTP/1.1" 200' in message, message
    return sorted(
        {(pri, tag, "boot") for pri, tag, *_ in booting(lines)}
        | {(pri, tag, "access") for pri, tag, *_ in access(lines)}
        | {(pri, tag, "shutdown") for pri, tag, _, m in lines if "Shutting down" in m}
    )


def compare(receiver: Receiver, args: list[str]) -> list:
    ours = exchange_lines(None, receiver, args)
    theirs = exchange_lines(GUNICORN, receiver, args)
    assert ours == theirs
    return ours


def test_udp_lines_match_gunicorn(tmp_path):
    receiver, to = udp_receiver(tmp_path)
    try:
        seen = compare(receiver, ["--log-syslog", "--log-syslog-to", to])
    finally:
        receiver.close()
    # facility user (1) * 8 + info (6); the default prefix is the app with ":" as ".".
    assert seen == [
        (14, "gunicorn.apps.echo.app.access", "access"),
        (14, "gunicorn.apps.echo.app.error", "boot"),
        (14, "gunicorn.apps.echo.app.error", "shutdown"),
    ]


@pytest.mark.parametrize("suffix", ["#dgram", ""])
def test_unix_datagram_lines_match_gunicorn(tmp_path, suffix):
    receiver, to = unix_receiver(tmp_path, suffix)
    args = ["--log-syslog", "--log-syslog-to", to, "--log-syslog-prefix", "web"]
    args += ["--log-syslog-facility", "LOCAL3"]
    try:
        seen = compare(receiver, args)
    finally:
        receiver.close()
    assert seen == [
        (158, "gunicorn.web.access", "access"),
        (158, "gunicorn.web.error", "boot"),
        (158, "gunicorn.web.error", "shutdown"),
    ]


def test_disable_redirect_access_to_syslog_matches_gunicorn(tmp_path):
    receiver, to = udp_receiver(tmp_path)
    args = ["--log-syslog", "--log-syslog-to", to, "--disable-redirect-access-to-syslog"]
    try:
        seen = compare(receiver, [*args, "--log-syslog-facility", "daemon"])
    finally:
        receiver.close()
    # daemon (3) * 8 + info (6); no access line.
    assert seen == [
        (30, "gunicorn.apps.echo.app.error", "boot"),
        (30, "gunicorn.apps.echo.app.error", "shutdown"),
    ]


def test_access_lines_also_go_to_the_access_log(tmp_path):
    receiver, to = udp_receiver(tmp_path)
    logfile = tmp_path / "access.log"
    try:
        exchange_lines(
            None,
            receiver,
            ["--log-syslog", "--log-syslog-to", to, "--access-logfile", str(logfile)],
        )
    finally:
        receiver.close()
    assert f'"GET {PROBE} HTTP/1.1" 200' in logfile.read_text()


def test_python_logging_path_sends_the_same_lines(tmp_path):
    """With ``--log-config-json`` the logs go through Python, whose Logger adds gunicorn's
    SysLogHandler itself: the same lines again. (A config that names the ``gunicorn.error``
    logger, as gunicorn's defaults merged under it do unless ``loggers`` is given, replaces
    that handler: then neither server sends anything.)"""
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({"version": 1, "disable_existing_loggers": False, "loggers": {}}))
    receiver, to = udp_receiver(tmp_path)
    args = ["--log-syslog", "--log-syslog-to", to, "--log-config-json", str(config)]
    try:
        seen = compare(receiver, [*args, "--log-syslog-prefix", "py"])
    finally:
        receiver.close()
    assert [tag for _, tag, _ in seen] == ["gunicorn.py.access", *["gunicorn.py.error"] * 2]


BAD = [
    (["--log-syslog-facility", "bogus"], "unknown facility name"),
    (["--log-syslog-to", "foo://x"], "invalid syslog address"),
    (["--log-syslog-to", "udp://127.0.0.1:abc"], "is not a valid port number"),
]


@pytest.mark.parametrize(
    "args,error", BAD, ids=lambda a: " ".join(a) if isinstance(a, list) else ""
)
def test_bad_syslog_setting_is_one_line(args, error):
    gunicorn = subprocess.run(
        [*GUNICORN, "--log-syslog", *args, "-b", "127.0.0.1:0", APP],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert gunicorn.returncode != 0 and error in gunicorn.stderr, gunicorn.stderr
    out = run_cli("--log-syslog", *args, APP)
    assert out.returncode == EXIT_USAGE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], out.stderr
    # Without --log-syslog gunicorn never reads them: both start.
    quiet = run_cli(*args, "--print-config", APP)
    assert quiet.returncode == 0, quiet.stderr


def test_print_config_shows_the_syslog_settings():
    out = run_cli("--log-syslog", "--log-syslog-facility", "local1", "--print-config", APP)
    assert out.returncode == 0, out.stderr
    pairs = [line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("syslog")]
    shown = {name.strip(): value.strip() for name, value in pairs}
    assert shown == {
        "syslog": "True",
        "syslog_addr": "udp://localhost:514",
        "syslog_prefix": "None",
        "syslog_facility": "local1",
    }
