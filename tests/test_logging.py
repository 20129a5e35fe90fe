"""Logging settings: --capture-output, the app's Python logging configured from
--log-config / --log-config-json / logconfig_dict, and USR1 reopening the access log."""

from __future__ import annotations

import json
import signal
import textwrap

from conftest import SOCKET_TIMEOUT, START_TIMEOUT, build_request, fetch, free_port, wait_for

APP = "apps.logging_app:app"


def text(path) -> str:
    return path.read_text() if path.exists() else ""


def logging_to_a_file(server_factory, *flags):
    """A server whose error log is a file (so no Listening line on stderr): bound to a free
    port, polled until it answers; returns it and a GET function."""
    port = free_port()
    srv = server_factory.spawn(["--bind", f"127.0.0.1:{port}", *flags, APP])

    def get(target):
        try:
            return fetch(("127.0.0.1", port), build_request("GET", target))
        except OSError:
            return None

    wait_for(lambda: get("/?warm-up"), START_TIMEOUT, "the server to answer")
    return srv, get


def test_capture_output_sends_stdout_and_stderr_to_the_error_log(server_factory, tmp_path):
    errors = tmp_path / "error.log"
    srv, get = logging_to_a_file(server_factory, "--capture-output", "--error-logfile", str(errors))
    assert get("/?captured").status == 200
    wait_for(lambda: "stderr says captured" in text(errors), SOCKET_TIMEOUT, "captured stderr")
    wait_for(lambda: "print says captured" in text(errors), SOCKET_TIMEOUT, "captured stdout")
    assert "print says captured" not in srv.stdout


def test_without_capture_output_stdout_stays_stdout(server_factory, tmp_path):
    errors = tmp_path / "error.log"
    srv, get = logging_to_a_file(server_factory, "--error-logfile", str(errors))
    assert get("/?free").status == 200
    wait_for(lambda: "print says free" in srv.stdout, SOCKET_TIMEOUT, "stdout")
    assert "print says free" not in text(errors)


def _dict_config(target) -> dict:
    """A config that starts on gunicorn too: merged over gunicorn's defaults, its own
    ``handlers`` replace gunicorn's, so the default root (handler ``console``) is replaced."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": []},
        "formatters": {"plain": {"format": "DICT %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(target), "formatter": "plain"}
        },
        "loggers": {"app": {"handlers": ["file"], "level": "INFO"}},
    }


def test_log_config_json(server_factory, tmp_path):
    target = tmp_path / "app.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(_dict_config(target)))
    srv = server_factory(APP, "--log-config-json", str(config), worker_class="async")
    assert srv.get("/?json").status == 200
    wait_for(lambda: "DICT app.views WARNING logger says json" in text(target), 10, "the line")


def test_logconfig_dict_from_a_config_file(server_factory, tmp_path):
    target = tmp_path / "app.log"
    conf = tmp_path / "logging.conf.py"
    conf.write_text(f"logconfig_dict = {_dict_config(target)!r}\n")
    srv = server_factory(APP, "-c", str(conf))
    assert srv.get("/?dict").status == 200
    wait_for(lambda: "DICT app.views WARNING logger says dict" in text(target), 10, "the line")


def test_log_config_ini(server_factory, tmp_path):
    target = tmp_path / "app.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            f"""
            [loggers]
            keys = root, app

            [handlers]
            keys = file

            [formatters]
            keys = plain

            [logger_root]
            level = WARNING
            handlers =

            [logger_app]
            level = INFO
            handlers = file
            qualname = app

            [handler_file]
            class = FileHandler
            args = ({str(target)!r},)
            formatter = plain

            [formatter_plain]
            format = INI %(name)s %(message)s
            """
        )
    )
    srv = server_factory(APP, "--log-config", str(ini))
    assert srv.get("/?ini").status == 200
    wait_for(lambda: "INI app.views logger says ini" in text(target), 10, "the line")


def test_bad_log_config_is_one_error(server_factory, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    srv = server_factory.spawn(["--log-config-json", str(bad), APP])
    assert srv.wait_exit() == 2
    lines = srv.stderr.strip().splitlines()
    assert len(lines) == 1 and "logging configuration failed" in lines[0], srv.stderr


def test_usr1_reopens_the_access_log(server_factory, tmp_path, worker_class):
    access = tmp_path / "access.log"
    srv = server_factory(APP, "--access-logfile", str(access), worker_class=worker_class)
    assert srv.get("/?before").status == 200
    wait_for(lambda: "?before" in text(access), SOCKET_TIMEOUT, "the first access line")
    moved = tmp_path / "access.log.1"
    access.rename(moved)
    mark = srv.log_mark()
    srv.signal(signal.SIGUSR1)
    srv.wait_log(r"Handling signal: usr1", since=mark)

    def after_reopen():
        srv.get("/?after")  # until the worker has seen USR1, lines still go to the old file
        return "?after" in text(access)

    wait_for(after_reopen, SOCKET_TIMEOUT, "access lines in the reopened file", interval=0.1)
    assert "?before" in text(moved) and "?before" not in text(access)
