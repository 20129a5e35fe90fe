"""Drop-in, bind family: `--bind` values from Procfiles and Dockerfiles, parsed as gunicorn's
``util.parse_address`` does, and `--print-config` / `--check-config` showing what serving
binds (issue 9, items 3 and 5). Each runs ferricorn and a live gunicorn the same way."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    Server,
    exchange,
    ferricorn_command,
    free_port,
    run_cli,
    wait_for,
)

APP = "dropin.app:app"
GUNICORN = [str(Path(sys.executable).parent / "gunicorn")]
FERRICORN = ferricorn_command()
SERVERS = pytest.mark.parametrize("command", [FERRICORN, GUNICORN], ids=["ferricorn", "gunicorn"])


def listening_ipv4(port: int) -> list[str]:
    """The local addresses of TCP sockets listening on ``port``, from /proc/net/tcp."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


# Cloud Run's quickstart Dockerfile and many Procfiles: `gunicorn --bind :$PORT ...`.
@SERVERS
def test_regression_bind_colon_port_listens_on_every_interface(command):
    port = free_port()
    server = Server(["--bind", f":{port}", "--workers", "1", APP], command=command)
    try:
        server.wait_ready()
        assert server.listening() == [f"http://0.0.0.0:{port}"], server.stderr
        assert listening_ipv4(port) == ["0.0.0.0"]
        assert server.get("/").body == b"ok"
    finally:
        server.stop()


def test_regression_print_and_check_config_show_the_bind_serving_uses():
    port = free_port()
    args = ["--bind", f":{port}", APP]
    printed = run_cli("--print-config", *args)
    assert printed.returncode == 0, printed.stderr
    assert f"bind                     = 0.0.0.0:{port}" in printed.stdout.splitlines()
    checked = run_cli("--check-config", *args)
    assert checked.returncode == 0, checked.stderr
    assert f"would bind 0.0.0.0:{port} " in checked.stdout, checked.stdout
    server = Server(args)
    try:
        server.wait_ready()
        assert server.listening() == [f"http://0.0.0.0:{port}"]
    finally:
        server.stop()


def test_regression_print_config_shows_the_port_environment_bind():
    env = {"PORT": "5123"}
    printed = run_cli("--print-config", APP, env=env)
    assert printed.returncode == 0, printed.stderr
    assert "bind                     = 0.0.0.0:5123" in printed.stdout.splitlines()


# A Procfile behind nginx: `web: gunicorn --bind unix://run/app.sock app:app`. gunicorn
# strips `unix:` and an optional `//`, so this is `run/app.sock`, relative to the directory.
@SERVERS
def test_regression_unix_double_slash_binds_the_relative_path(command, tmp_path):
    folder = f"dropin-{uuid.uuid4().hex[:8]}"  # absent from /, so the absolute reading fails
    (tmp_path / folder).mkdir()
    args = ["--bind", f"unix://{folder}/app.sock", "--pythonpath", str(TESTS_DIR), APP]
    server = Server(args, command=command, cwd=tmp_path)
    sock_path = tmp_path / folder / "app.sock"
    try:

        def serving():
            if server.proc.poll() is not None:
                raise AssertionError(f"exited with {server.proc.returncode}:\n{server.stderr}")
            return sock_path.is_socket()

        wait_for(serving, SOCKET_TIMEOUT, "the relative socket file")
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        wait_for(lambda: _can_connect(sock_path), SOCKET_TIMEOUT, "a connect")
        assert exchange(str(sock_path), [request]).response.body == b"ok"
        assert not os.path.exists(f"/{folder}")
    finally:
        server.stop()


def _can_connect(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True
