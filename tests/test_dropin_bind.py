"""Drop-in, bind family: `--bind` values from Procfiles and Dockerfiles, parsed as gunicorn's
``util.parse_address`` does, and `--print-config` / `--check-config` showing what serving
binds (issue 9, items 3 and 5). Each runs ferricorn and a live gunicorn the same way."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    Server,
    exchange,
    ferricorn_command,
    free_port,
    gunicorn_command,
    run_cli,
    wait_for,
)

APP = "dropin.app:app"
GUNICORN = gunicorn_command()
FERRICORN = ferricorn_command()
SERVERS = {"ferricorn": FERRICORN, "gunicorn": GUNICORN}


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
def test_regression_bind_colon_port_listens_on_every_interface():
    seen = {}
    for name, command in SERVERS.items():
        port = free_port()
        server = Server(["--bind", f":{port}", "--workers", "1", APP], command=command)
        try:
            server.wait_ready()
            addresses = [a.replace(str(port), "PORT") for a in server.listening()]
            seen[name] = (addresses, listening_ipv4(port), server.get("/").body)
        finally:
            server.stop()
    assert seen["ferricorn"] == seen["gunicorn"] == (["http://0.0.0.0:PORT"], ["0.0.0.0"], b"ok")


def printed_settings(stdout: str) -> dict[str, str]:
    """`--print-config`'s `name = value` lines, however wide its name column is."""
    pairs = (line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_regression_print_and_check_config_show_the_bind_serving_uses():
    port = free_port()
    args = ["--bind", f":{port}", APP]
    printed = run_cli("--print-config", *args)
    assert printed.returncode == 0, printed.stderr
    assert printed_settings(printed.stdout)["bind"] == f"0.0.0.0:{port}"
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
    assert printed_settings(printed.stdout)["bind"] == "0.0.0.0:5123"


# A Procfile behind nginx: `web: gunicorn --bind unix://run/app.sock app:app`. gunicorn
# strips `unix:` and an optional `//`, so this is `run/app.sock`, relative to the directory.
def test_regression_unix_double_slash_binds_the_relative_path(tmp_path):
    seen = {}
    for name, command in SERVERS.items():
        folder = f"dropin-{uuid.uuid4().hex[:8]}"  # absent from /: the absolute reading fails
        (tmp_path / folder).mkdir()
        args = ["--bind", f"unix://{folder}/app.sock", "--pythonpath", str(TESTS_DIR), APP]
        server = Server(args, command=command, cwd=tmp_path)
        sock_path = tmp_path / folder / "app.sock"
        try:

            def serving(server=server, sock_path=sock_path):
                if server.proc.poll() is not None:
                    raise AssertionError(f"exited with {server.proc.returncode}:\n{server.stderr}")
                return sock_path.is_socket() and _can_connect(sock_path)

            wait_for(serving, SOCKET_TIMEOUT, f"{name} on the relative socket file")
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            body = exchange(str(sock_path), [request]).response.body
            seen[name] = (body, os.path.exists(f"/{folder}"))
        finally:
            server.stop()
    assert seen["ferricorn"] == seen["gunicorn"] == (b"ok", False)


def _can_connect(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True
