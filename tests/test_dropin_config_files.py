"""Drop-in, config-file family: gunicorn config files as teams keep them, run unmodified on
ferricorn and on a live gunicorn (issue 9, items 4 and 7).

``dropin/example_config.py`` follows the layout of gunicorn's own example config
(``user = None``, ``spew = False``, ``tmp_upload_dir = None``, ...); another file is built
here from gunicorn's own list of settings, each at gunicorn's default.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import TESTS_DIR, Server, ferricorn_command
from ferricorn import _config
from gunicorn import config as gunicorn_config

APP = "dropin.app:app"
GUNICORN = [str(Path(sys.executable).parent / "gunicorn")]
FERRICORN = ferricorn_command()
SERVERS = pytest.mark.parametrize("command", [FERRICORN, GUNICORN], ids=["ferricorn", "gunicorn"])
DROPIN = TESTS_DIR / "dropin"

# Settings whose gunicorn default depends on the machine or the run (the user gunicorn was
# imported as, its working directory), or is not a plain Python literal.
MACHINE_DEFAULTS = {
    "config",
    "wsgi_app",
    "bind",
    "user",
    "group",
    "chdir",
    "ssl_version",
    "cert_reqs",
}


def serve(command: list[str], args: list[str]) -> Server:
    server = Server(args, command=command, cwd=TESTS_DIR)
    try:
        server.wait_ready()
        assert server.get("/").body == b"ok"
    finally:
        server.stop()
    return server


def warnings(server: Server) -> list[str]:
    return [line for line in server.stderr.splitlines() if "[WARNING]" in line]


@SERVERS
def test_regression_none_means_the_default_in_gunicorn_example_config(command):
    server = serve(command, ["-c", str(DROPIN / "example_config.py"), APP])
    assert "Server is ready. Spawning workers" in server.stderr  # the file's hooks ran
    if command is FERRICORN:
        assert warnings(server) == [], server.stderr


def every_default_config() -> str:
    """A config file setting each of gunicorn 27's settings to gunicorn's own default."""
    lines = [
        "# Every gunicorn 27 setting at gunicorn's default, as a generated config would list them.",
        'bind = "127.0.0.1:0"',
    ]
    for setting in gunicorn_config.KNOWN_SETTINGS:
        default = setting.default
        if setting.name in MACHINE_DEFAULTS or callable(default):
            continue
        assert isinstance(default, (str, int, bool, list, dict, type(None))), setting.name
        lines.append(f"{setting.name} = {default!r}")
    # gunicorn's control socket is on by default (a file under $HOME); not in a test.
    lines.append("control_socket_disable = True")
    return "\n".join(lines) + "\n"


@SERVERS
def test_regression_every_gunicorn_setting_at_its_default_starts_quietly(command, tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(every_default_config())
    server = serve(command, ["-c", str(conf), "--pythonpath", str(TESTS_DIR), APP])
    if command is FERRICORN:
        assert warnings(server) == [], server.stderr


@SERVERS
def test_a_setting_ferricorn_lacks_is_one_warning_and_the_rest_applies(command):
    server = serve(command, ["-c", str(DROPIN / "statsd_config.py"), APP])
    if command is FERRICORN:
        found = warnings(server)
        assert len(found) == 1, server.stderr  # statsd_prefix alone does nothing: no warning
        assert "'statsd_host' is not supported by ferricorn yet" in found[0]
        assert "docs/migrating.md" in found[0]


def test_gunicorn_settings_list_is_gunicorn_27s():
    names = {setting.name for setting in gunicorn_config.KNOWN_SETTINGS}
    assert set(_config.GUNICORN_SETTINGS) == names, set(_config.GUNICORN_SETTINGS) ^ names
