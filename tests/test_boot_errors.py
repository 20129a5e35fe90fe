"""A master that cannot start: one readable line, gunicorn's exit code, nothing left behind.

Each ``regression_`` test pins a bug of the boot path (src/lib.rs, src/exit.rs' ``BootError``)
and fails on the code before its fix. Exit codes are compared with a live gunicorn where it
has the same failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import (
    RUN_DEADLINE,
    TESTS_DIR,
    Client,
    build_request,
    gunicorn_command,
    pid_alive,
    run_cli,
)

APP = "apps.echo:app"
BOOT = 20.0  # bound for a master, or a new master, to boot or fail
SUPERVISED = TESTS_DIR / "apps" / "supervised.py"
EXIT_FAILURE = 1
EXIT_APP_LOAD = 4


def run_gunicorn(*args: str, cwd: Path | str = TESTS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run(
        gunicorn_command() + list(args),
        cwd=str(cwd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE,
    )


def test_regression_bind_failure_names_the_address_not_its_debug_form():
    """`Can't bind Tcp { host: "127.0.0.1", port: N }` was the log line: Rust's debug form of
    the parsed address. It is the address as typed now, and the exit code is gunicorn's 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--bind", f"127.0.0.1:{port}", APP)
        gunicorn = run_gunicorn("--bind", f"127.0.0.1:{port}", APP)
    assert result.returncode == gunicorn.returncode == EXIT_FAILURE, result.stderr
    errors = [line for line in result.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, result.stderr
    assert f'Can\'t bind "127.0.0.1:{port}": ' in errors[0], errors[0]
    assert "Tcp {" not in result.stderr


def test_regression_refused_pidfile_removes_the_bound_unix_socket(tmp_path):
    """A `--pid` file naming a running process stops the master with exit 1 (gunicorn's), and
    the unix socket it had already bound was left on disk."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test's process: alive
    sock = tmp_path / "app.sock"
    result = run_cli("--bind", f"unix:{sock}", "--pid", str(pidfile), APP)
    gunicorn = run_gunicorn("--bind", f"unix:{tmp_path / 'g.sock'}", "--pid", str(pidfile), APP)
    assert result.returncode == gunicorn.returncode == EXIT_FAILURE, result.stderr
    assert not sock.exists(), "the unix socket file was left behind"
    assert f"--pid {pidfile}: the file names a running process (pid:{os.getpid()})" in (
        result.stderr
    )
    assert pidfile.read_text() == f"{os.getpid()}\n", "another process's pidfile was touched"


def test_regression_failed_preload_of_a_usr2_master_keeps_the_old_masters_socket(
    server_factory,
):
    """USR2 to a `--preload` master whose app no longer imports: the new master exits 4 and
    the old one serves on, but the new master unlinked the unix socket file it inherited,
    so the old master could no longer be reached by its path."""
    directory = Path(tempfile.mkdtemp(prefix="fc-"))
    path = directory / "preload.sock"
    try:
        app = directory / "supervised.py"
        shutil.copyfile(SUPERVISED, app)
        srv = server_factory("supervised:app", "--preload", binds=(f"unix:{path}",), cwd=directory)
        app.write_text(app.read_text() + "\ndef broken_on_purpose(:\n    pass\n")
        mark = srv.log_mark()
        srv.signal(signal.SIGUSR2)
        srv.wait_log(r"Started a new master \(pid:\d+\)", timeout=BOOT, since=mark)
        exited = srv.wait_log(
            r"The master started by USR2 \(pid:(\d+)\) exited", timeout=BOOT, since=mark
        )
        assert not pid_alive(int(exited.group(1)))
        assert "SyntaxError" in srv.log_since(mark), srv.log_since(mark)
        assert path.exists(), "the failed new master unlinked the old master's socket"
        with Client(str(path)) as client:
            client.send(build_request("GET", "/pid"))
            response = client.read_response()
        assert response is not None and response.status == 200, response
        assert json.loads(response.body)["ppid"] == srv.pid
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_failed_preload_exits_4_with_the_error_once(tmp_path):
    """gunicorn exits 1 with its own traceback here; ferricorn gives the code it gives for an
    app that fails in its workers (docs/differences.md)."""
    sock = tmp_path / "app.sock"
    result = run_cli("--preload", "--bind", f"unix:{sock}", "apps.no_such_module:app")
    assert result.returncode == EXIT_APP_LOAD, result.stderr
    assert result.stderr.count("no module named 'apps.no_such_module'") == 1, result.stderr
    assert "Booting worker" not in result.stderr
    assert not sock.exists()


def test_bad_chdir_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_cli("--chdir", str(missing), "--bind", "127.0.0.1:0", APP)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"ferricorn: error: --chdir {missing}: No such file or directory (os error 2)"]


def test_check_config_with_an_app_that_does_not_load_exits_1_like_gunicorn():
    result = run_cli("--check-config", "apps.no_such_module:app")
    gunicorn = run_gunicorn("--check-config", "apps.no_such_module:app")
    assert result.returncode == gunicorn.returncode == EXIT_FAILURE, result.stderr
    assert "Failed to load the application" in result.stderr


@pytest.mark.parametrize(
    "spec, kind",
    [
        (":app", "spec"),
        ("apps.factories:create_app(os.getcwd())", "spec"),
        ("no_such_module_xyz:app", "not_found"),
        ("apps.echo:nope", "not_found"),
        ("apps.factories:not_callable", "not_callable"),
        ("apps.broken_import:app", "raised"),
    ],
)
def test_loader_errors_carry_the_kind_the_server_reads(spec, kind):
    """`AppLoadError.kind` picks the variant of src/load.rs' `LoadError`; an unknown kind
    would read as a malformed APP_MODULE."""
    from ferricorn._loader import AppLoadError, load

    with pytest.raises(AppLoadError) as raised:
        load(spec)
    assert raised.value.kind == kind, str(raised.value)
