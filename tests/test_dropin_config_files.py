"""Drop-in, config-file family: gunicorn config files as teams keep them, run unmodified on
ferricorn and on a live gunicorn (issue 9, items 4 and 7).

``dropin/example_config.py`` follows the layout of gunicorn's own example config
(``user = None``, ``spew = False``, ``tmp_upload_dir = None``, ...); another file is built
here from gunicorn's own list of settings, each at gunicorn's default.
"""

from __future__ import annotations

from conftest import TESTS_DIR, Server, ferricorn_command, gunicorn_command
from ferricorn import _config
from gunicorn import config as gunicorn_config

APP = "dropin.app:app"
GUNICORN = gunicorn_command()
FERRICORN = ferricorn_command()
SERVERS = {"ferricorn": FERRICORN, "gunicorn": GUNICORN}
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


def serve_both(args: list[str]) -> dict[str, Server]:
    """Starts ferricorn, then gunicorn, with ``args``; each must serve ``/``. The stopped
    servers are returned for their output."""
    done = {}
    for name, command in SERVERS.items():
        server = Server(args, command=command, cwd=TESTS_DIR)
        try:
            server.wait_ready()
            assert server.get("/").body == b"ok", name
        finally:
            server.stop()
        done[name] = server
    return done


def warnings(server: Server) -> list[str]:
    return [line for line in server.stderr.splitlines() if "[WARNING]" in line]


def test_regression_none_means_the_default_in_gunicorn_example_config():
    servers = serve_both(["-c", str(DROPIN / "example_config.py"), APP])
    for server in servers.values():
        assert "Server is ready. Spawning workers" in server.stderr  # the file's hooks ran
    assert warnings(servers["ferricorn"]) == [], servers["ferricorn"].stderr


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


def test_regression_every_gunicorn_setting_at_its_default_starts_quietly(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(every_default_config())
    servers = serve_both(["-c", str(conf), "--pythonpath", str(TESTS_DIR), APP])
    assert warnings(servers["ferricorn"]) == [], servers["ferricorn"].stderr


def test_a_setting_ferricorn_lacks_is_one_warning_and_the_rest_applies():
    servers = serve_both(["-c", str(DROPIN / "nosendfile_config.py"), APP])
    found = warnings(servers["ferricorn"])
    assert len(found) == 1, servers["ferricorn"].stderr  # statsd_prefix alone does nothing
    assert "'sendfile' is not supported by ferricorn yet" in found[0]
    assert "docs/migrating.md" in found[0]


def test_regression_config_file_imports_from_the_working_directory():
    """gunicorn puts the working directory on sys.path before it runs the config file, so a
    file may import its settings from a module next to the app; ferricorn failed to load it."""
    servers = serve_both(["-c", str(DROPIN / "split_config.py"), APP])
    for name, server in servers.items():
        assert server.stderr.count("Booting worker with pid") == 2, (name, server.stderr)


def test_gunicorn_settings_list_is_gunicorn_27s():
    names = {setting.name for setting in gunicorn_config.KNOWN_SETTINGS}
    assert set(_config.GUNICORN_SETTINGS) == names, set(_config.GUNICORN_SETTINGS) ^ names
