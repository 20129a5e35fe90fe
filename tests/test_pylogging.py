"""Logging through Python when the config asks for it (issue 9, item 8), each case run on
ferricorn and on a live gunicorn 27 in the same test.

With ``logconfig_dict``, ``--log-config-json``, ``--log-config`` or a ``logger_class``,
gunicorn's error and access logs are the ``gunicorn.error`` and ``gunicorn.access``
loggers: the records a JSON pipeline gets (``pylog_helper.JsonLinesHandler`` writes them
as JSON lines) must have the same logger names, levels, messages and ``args`` on both.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    Server,
    ferricorn_command,
    gunicorn_command,
    wait_for,
)

APP = "dropin.app:app"
SERVERS = {
    "ferricorn": ferricorn_command(),
    "gunicorn": gunicorn_command(),
}
# No time, no pid: the same line on both servers.
FORMAT = '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %(m)s %(U)s %(q)s %({content-type}o)s'
GENERIC = {
    "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
    "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
}


def json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def logconfig_dict(records: Path, loggers: list[str]) -> dict:
    """gunicorn.error to stderr in gunicorn's layout (the tests' readiness lines) and to
    ``records``; each logger in ``loggers`` configured to ``records``."""
    handlers = {
        "records": {"class": "pylog_helper.JsonLinesHandler", "filename": str(records)},
        "stderr": {"class": "logging.StreamHandler", "formatter": "generic"},
    }
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": []},
        "formatters": {"generic": GENERIC},
        "handlers": handlers,
        "loggers": {},
    }
    for name in loggers:
        chosen = ["records", "stderr"] if name == "gunicorn.error" else ["records"]
        config["loggers"][name] = {"level": "INFO", "handlers": chosen, "propagate": False}
    return config


def write_config(path: Path, **settings) -> Path:
    lines = ["control_socket_disable = True"]
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def serve(name: str, args: list[str], targets: list[str], env=None, until=None) -> Server:
    """Runs one server with ``args``, GETs each target, waits for ``until()`` (the records
    the test reads), stops it and returns it."""
    server = Server(["--bind", "127.0.0.1:0", *args, APP], command=SERVERS[name], env=env)
    try:
        server.wait_ready()
        for target in targets:
            assert server.get(target, [("User-Agent", "pylog-test")]).status == 200, name
        if until is not None:
            wait_for(until, SOCKET_TIMEOUT, f"{name}'s log records")
    finally:
        server.stop()
    return server


TARGETS = ["/", "/a?x=1", '/q"uote']


def count(predicate, path: Path) -> int:
    return sum(1 for r in json_lines(path) if predicate(r))


def is_access(record: dict) -> bool:
    return record["name"] == "gunicorn.access"


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def records_through_dict(name: str, tmp_path: Path) -> list[dict]:
    records = tmp_path / f"{name}.jsonl"
    config = logconfig_dict(records, ["gunicorn.error", "gunicorn.access"])
    conf = write_config(tmp_path / f"{name}.conf.py", logconfig_dict=config)
    args = ["-c", str(conf), "--access-logformat", FORMAT, "--log-level", "warning"]
    serve(name, args, TARGETS, until=lambda: count(is_access, records) == len(TARGETS))
    return json_lines(records)


def test_regression_logconfig_dict_sends_error_and_access_logs_through_python(tmp_path):
    got = {name: records_through_dict(name, tmp_path) for name in SERVERS}
    for name, records in got.items():
        access = [r for r in records if is_access(r)]
        # gunicorn's access record: the format as msg, the atoms (a SafeAtoms dict) as args.
        assert {(r["level"], r["msg"], r["args_type"]) for r in access} == {
            ("INFO", FORMAT, "SafeAtoms")
        }, name
        for r in access:
            letters = {k for k in r["args"] if not k.startswith("{")}
            assert letters == set("hlutrsmUqHbBfaTDMLp"), (name, letters)
            assert "{user-agent}i" in r["args"] and "{content-type}o" in r["args"], name
        # The dict's INFO level for gunicorn.error wins over --log-level warning.
        error = {(r["level"], r["message"].split(":")[0]) for r in records}
        for line in ["Listening at", "Using worker", "Booting worker with pid"]:
            assert ("INFO", line) in error, (name, line)
        assert {r["name"] for r in records} == {"gunicorn.error", "gunicorn.access"}, name
    messages = {name: [r["message"] for r in rs if is_access(r)] for name, rs in got.items()}
    assert messages["ferricorn"] == messages["gunicorn"]
    assert messages["ferricorn"][2].startswith('127.0.0.1 "GET /q\\"uote HTTP/1.1" 200 2')


def stdout_access_line(name: str, config: Path) -> str:
    server = Server(
        ["--bind", "127.0.0.1:0", "--log-config-json", str(config), APP], command=SERVERS[name]
    )
    try:
        server.wait_ready()
        assert server.get("/json", [("User-Agent", "pylog-test")]).status == 200
        wait_for(lambda: "pylog-test" in server.stdout, SOCKET_TIMEOUT, f"{name}'s stdout")
    finally:
        server.stop()
    line = next(x for x in server.stdout.splitlines() if "pylog-test" in x)
    line = line.split("] ", 2)[2]  # after the time and the pid
    # The two servers run one after the other: their request times may differ by a second.
    return re.sub(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", "[TIME]", line)


def test_regression_log_config_json_defaults_send_access_lines_to_stdout(tmp_path):
    """A JSON config without ``loggers`` keeps gunicorn's defaults: gunicorn.access to stdout
    in gunicorn's generic layout, though no --access-logfile was given."""
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({"version": 1, "root": {"level": "WARNING"}}))
    got = {name: stdout_access_line(name, config) for name in SERVERS}
    assert got["ferricorn"] == got["gunicorn"]
    assert got["ferricorn"].startswith("[INFO] 127.0.0.1 - - [")


def access_file_lines(name: str, tmp_path: Path, configured: bool) -> int:
    records = tmp_path / f"{name}-{configured}.jsonl"
    loggers = ["gunicorn.error"] + (["gunicorn.access"] if configured else [])
    config = logconfig_dict(records, loggers)
    conf = write_config(tmp_path / f"{name}-{configured}.conf.py", logconfig_dict=config)
    access_file = tmp_path / f"{name}-{configured}.access.log"

    def done():
        if configured:
            return count(is_access, records) == len(TARGETS)
        return lines(access_file) == len(TARGETS)

    serve(name, ["-c", str(conf), "--access-logfile", str(access_file)], TARGETS, until=done)
    return lines(access_file)


def test_regression_access_logfile_with_logconfig_dict_as_gunicorn(tmp_path):
    """--access-logfile adds gunicorn's own handler to gunicorn.access; a logconfig_dict
    that configures gunicorn.access replaces it (the file stays empty), one that does not
    keeps it."""
    for configured, want in [(False, len(TARGETS)), (True, 0)]:
        got = {name: access_file_lines(name, tmp_path, configured) for name in SERVERS}
        assert got == {"ferricorn": want, "gunicorn": want}, configured


def logger_class_calls(name: str, tmp_path: Path) -> list[dict]:
    calls = tmp_path / f"{name}.calls.jsonl"
    access_file = tmp_path / f"{name}.access.log"
    conf = write_config(
        tmp_path / f"{name}.conf.py", logger_class="pylog_helper.AccessCountingLogger"
    )
    server = Server(
        ["--bind", "127.0.0.1:0", "-c", str(conf), "--access-logfile", str(access_file), APP],
        command=SERVERS[name],
        env={"PYLOG_ACCESS_FILE": str(calls)},
    )
    try:
        server.wait_ready()
        for target in TARGETS:
            assert server.get(target, [("User-Agent", "pylog-test")]).status == 200
        wait_for(lambda: lines(calls) == len(TARGETS), SOCKET_TIMEOUT, f"{name}'s access calls")
        # super().access wrote gunicorn's line to the access log file.
        wait_for(lambda: lines(access_file) == len(TARGETS), SOCKET_TIMEOUT, "the access lines")
        server.signal(signal.SIGUSR1)
        reopened = lambda: count(lambda c: "reopened" in c, calls) > 0  # noqa: E731
        wait_for(reopened, SOCKET_TIMEOUT, f"{name}'s reopen_files")
    finally:
        server.stop()
    return [c for c in json_lines(calls) if "reopened" not in c]


def test_regression_logger_class_subclass_gets_every_request(tmp_path):
    """warehouse-style: ``logger_class`` names a gunicorn Logger subclass whose ``access``
    is called once per response with gunicorn's arguments; USR1 calls its reopen_files."""
    got = {name: logger_class_calls(name, tmp_path) for name in SERVERS}
    assert got["ferricorn"] == got["gunicorn"]
    assert got["ferricorn"][0]["status"] == "200 OK"
    assert got["ferricorn"][0]["user_agent"] == "pylog-test"


def test_regression_usr1_reopens_the_python_log_files(tmp_path, worker_class):
    records = tmp_path / "records.log"
    config = {
        "version": 1,
        "root": {"level": "WARNING", "handlers": []},
        "formatters": {"generic": GENERIC},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(records)},
            "stderr": {"class": "logging.StreamHandler", "formatter": "generic"},
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["file"], "propagate": False},
        },
    }
    conf = write_config(tmp_path / "conf.py", logconfig_dict=config)
    args = ["--bind", "127.0.0.1:0", "-k", worker_class, "-c", str(conf), APP]
    server = Server(args, cwd=TESTS_DIR)
    try:
        server.wait_ready()
        assert server.get("/before").status == 200
        wait_for(lambda: "/before" in records.read_text(), SOCKET_TIMEOUT, "the first line")
        moved = tmp_path / "records.log.1"
        records.rename(moved)
        mark = server.log_mark()
        server.signal(signal.SIGUSR1)
        server.wait_log(r"Handling signal: usr1", since=mark)

        def after_reopen():
            server.get("/after")
            return records.exists() and "/after" in records.read_text()

        wait_for(after_reopen, SOCKET_TIMEOUT, "lines in the reopened file", interval=0.1)
        assert "/before" in moved.read_text()
    finally:
        server.stop()


def app_error_records(name: str, tmp_path: Path) -> list[dict]:
    records = tmp_path / f"{name}.errors.jsonl"
    config = logconfig_dict(records, ["gunicorn.error"])
    conf = write_config(tmp_path / f"{name}.conf.py", logconfig_dict=config)
    server = Server(
        ["--bind", "127.0.0.1:0", "-c", str(conf), "pylog_helper:failing_app"],
        command=SERVERS[name],
    )
    failed = lambda: count(lambda r: r["level"] == "ERROR", records) > 0  # noqa: E731
    try:
        server.wait_ready()
        assert server.get("/raise").status == 500
        wait_for(failed, SOCKET_TIMEOUT, f"{name}'s error record")
    finally:
        server.stop()
    return [r for r in json_lines(records) if r["level"] == "ERROR"]


def test_regression_app_exception_is_logged_with_exc_info_as_gunicorn(tmp_path):
    got = {name: app_error_records(name, tmp_path) for name in SERVERS}
    for name, records in got.items():
        assert [(r["msg"], r["message"], r["exc"]) for r in records] == [
            ("Error handling request %s %s", "Error handling request GET /raise", "ValueError")
        ], name


def test_regression_hup_keeps_the_logging_config_level(tmp_path):
    """The dict's INFO for gunicorn.error wins over --log-level warning, after HUP too: the
    new generation's Booting lines still come through."""
    records = tmp_path / "records.jsonl"
    config = logconfig_dict(records, ["gunicorn.error", "gunicorn.access"])
    conf = write_config(tmp_path / "conf.py", logconfig_dict=config)
    server = Server(["--bind", "127.0.0.1:0", "--log-level", "warning", "-c", str(conf), APP])

    def booted() -> int:
        return count(lambda r: r["message"].startswith("Booting worker"), records)

    try:
        server.wait_ready()
        server.signal(signal.SIGHUP)
        wait_for(lambda: booted() >= 2, SOCKET_TIMEOUT, "the new generation's Booting line")
        assert server.get("/after-hup").status == 200
        wait_for(lambda: count(is_access, records) == 1, SOCKET_TIMEOUT, "the access record")
    finally:
        server.stop()
