"""Drop-in, flag family: gunicorn flags ferricorn lacks are named, the harmless ones are
accepted, `-R` works, and `--check-config` reports what it sees (issue 9, items 7 and 11).

The list of gunicorn's flags comes from the gunicorn 27 installed next to the tests, so a
flag gunicorn adds fails here until ferricorn knows it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    build_request,
    ferricorn_command,
    fetch,
    gunicorn_command,
    pid_alive,
    read_pid,
    run_cli,
    wait_for,
)
from gunicorn import config as gunicorn_config

APP = "dropin.app:app"
GUNICORN = gunicorn_command()
FERRICORN = ferricorn_command()
EXIT_USAGE = 2


def run_gunicorn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GUNICORN, *args], cwd=TESTS_DIR, capture_output=True, text=True, timeout=30
    )


# Command lines from Dockerfiles and Procfiles that lean on a gunicorn feature ferricorn
# has not built: tracing, sendfile off, polling reload (TLS: test_tls, PROXY: test_proxy_protocol).
NOT_YET = [
    ["--spew"],
    ["--no-sendfile"],
    ["--reload", "--reload-engine", "poll"],
]


@pytest.mark.parametrize("args", NOT_YET, ids=lambda a: " ".join(a))
def test_regression_gunicorn_flag_not_built_yet_is_named(args):
    gunicorn = run_gunicorn(*args, "--check-config", APP)
    assert gunicorn.returncode == 0, gunicorn.stderr  # a real gunicorn flag
    out = run_cli(*args, APP)
    assert out.returncode == EXIT_USAGE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "a gunicorn setting" in lines[0] and "does not support yet" in lines[0], lines[0]
    assert "docs/migrating.md" in lines[0] and "unrecognized" not in lines[0], lines[0]


def gunicorn_flags() -> list[tuple[str, list[str]]]:
    """(setting, a command line for it) for every flag gunicorn 27 has."""
    found = []
    for setting in gunicorn_config.KNOWN_SETTINGS:
        for flag in setting.cli or []:
            takes_value = setting.action not in ("store_true", "store_const")
            takes_value = takes_value and getattr(setting, "nargs", None) != "?"
            found.append((setting.name, [flag, "1"] if takes_value else [flag]))
    return found


def test_regression_every_gunicorn_flag_is_known():
    """Every flag gunicorn has either works (here: `--help` answers after it) or is named as
    a gunicorn setting ferricorn lacks; none is "unrecognized"."""
    flags = gunicorn_flags()
    assert len(flags) > 90
    named = []
    for name, args in flags:
        out = run_cli(*args, "--help")
        assert "unrecognized" not in out.stderr, (args, out.stderr)
        if out.returncode == EXIT_USAGE:
            assert "a gunicorn setting" in out.stderr and f"({name})" in out.stderr, out.stderr
            named.append(name)
        else:
            assert out.returncode == 0 and "usage:" in out.stdout, (args, out.stderr)
    assert "spew" in named
    assert "proxy_protocol" not in named and "proxy_allow_ips" not in named  # issue 12


# Settings that lose nothing when ignored start without a word.
@pytest.mark.parametrize(
    "args",
    [
        ["--no-control-socket"],
        ["--log-syslog-to", "udp://localhost:514"],
        ["--proxy-protocol=off"],
        ["--reload-engine", "auto"],
        ["--suppress-ragged-eofs"],
    ],
    ids=lambda a: " ".join(a),
)
def test_regression_harmless_gunicorn_flags_start_quietly(args):
    out = run_cli(*args, "--print-config", APP)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr


# An init script of the pre-systemd kind: `gunicorn -D -R --pid ... >> /var/log/app.out 2>&1`,
# so the daemon's log goes where the shell sent it.
def test_regression_enable_stdio_inheritance_keeps_the_daemon_output(tmp_path):
    seen = {}
    for name, command in {"ferricorn": FERRICORN, "gunicorn": GUNICORN}.items():
        seen[name] = daemon_output_serves(command, tmp_path / name)
    assert seen["ferricorn"] == seen["gunicorn"] == b"ok"


def daemon_output_serves(command: list[str], folder: Path) -> bytes:
    """Starts ``command -D -R`` with its output sent to a file; the body of ``/`` from the
    port the daemon's "Listening at" line in that file names."""
    folder.mkdir()
    out_file, pid_file = folder / "app.out", folder / "app.pid"
    args = ["-D", "-R", "--pid", str(pid_file), "--bind", "127.0.0.1:0", APP]
    with out_file.open("w") as sink:
        launcher = subprocess.run(
            [*command, *args], cwd=TESTS_DIR, stdout=sink, stderr=sink, timeout=30
        )
    assert launcher.returncode == 0, out_file.read_text()
    pid = wait_for(lambda: read_pid(pid_file), SOCKET_TIMEOUT, "the daemon's pidfile")
    try:
        port = wait_for(
            lambda: _listening_port(out_file.read_text()), SOCKET_TIMEOUT, "Listening at"
        )
        return fetch(("127.0.0.1", port), build_request("GET", "/")).body
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)  # the daemon this test started
        wait_for(lambda: not pid_alive(pid), SOCKET_TIMEOUT, "the daemon to exit")


def _listening_port(text: str) -> int | None:
    for line in text.splitlines():
        if "Listening at: http://127.0.0.1:" in line:
            return int(line.split("127.0.0.1:")[1].split()[0])
    return None


@pytest.mark.parametrize(
    ("args", "reported"),
    [
        (["--threads", "8"], "note: --threads 8 with the sync worker"),
        (["-k", "gevent", "--threads", "4"], "warning: --threads 4 is ignored with -k gevent"),
        (["-k", "eventlet"], "note: -k eventlet: running the async worker with 100 app threads"),
        (["-c", str(TESTS_DIR / "dropin" / "nosendfile_config.py")], "'sendfile' is not supported"),
        (["--reload-engine", "inotify"], "ignored: gunicorn setting 'reload_engine'"),
    ],
    ids=["threads", "gevent-threads", "eventlet", "sendfile", "harmless"],
)
def test_regression_check_config_reports_what_it_sees(args, reported):
    out = run_cli("--check-config", *args, APP)
    assert out.returncode == 0, out.stderr
    assert reported in out.stdout, out.stdout
    assert "are fine" not in out.stdout, out.stdout


def test_check_config_says_fine_when_there_is_nothing_to_report():
    out = run_cli("--check-config", "--bind", "127.0.0.1:9000", APP)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ferricorn: would bind 127.0.0.1:9000 and run 1 sync worker(s)",
        f'ferricorn: the configuration and the app "{APP}" are fine',
    ]
