"""Configuration as gunicorn reads it: config files, FERRICORN_CMD_ARGS, hooks, checks.

The first test runs an unmodified gunicorn.conf.py (the kind teams already have) and
proves that each setting it uses took effect.
"""

from __future__ import annotations

import re
import subprocess
import textwrap

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    free_port,
    gunicorn_command,
    run_cli,
    wait_for,
)

APP = "apps.config_app:app"

GUNICORN_CONF = """\
import os

bind = "127.0.0.1:{port}"
workers = 2
worker_class = "gthread"
timeout = 2
accesslog = "{access}"
access_log_format = '%(s)s %(m)s %(U)s "%({{x-trace}}i)s" %({{x-hooked}}o)s'
raw_env = ["FOO=from-raw-env"]


def when_ready(server):
    with open("{marks}", "a") as f:
        f.write(f"when_ready {{server.pid}} {{server.num_workers}}\\n")


def post_fork(server, worker):
    with open("{marks}", "a") as f:
        f.write(f"post_fork {{worker.pid}} {{worker.age}}\\n")
"""


def run(args: list[str], cwd, env=None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env=env, timeout=60)


def printed(output: str) -> dict[str, str]:
    """`--print-config` lines as a dict."""
    pairs = (line.split(" = ", 1) for line in output.splitlines() if " = " in line)
    return {name.strip(): value for name, value in pairs}


def test_unmodified_gunicorn_conf_py_takes_effect(server_factory, tmp_path):
    port = free_port()
    access, marks = tmp_path / "access.log", tmp_path / "marks"
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF.format(port=port, access=access, marks=marks))
    srv = server_factory.spawn(["-c", str(conf), APP])
    srv.wait_ready(workers=2)
    assert srv.port == port  # bind
    assert "Using worker: async" in srv.stderr  # worker_class gthread runs the async worker
    wait_for(lambda: len(srv.worker_pids()) == 2, SOCKET_TIMEOUT, "2 workers")  # workers
    response = srv.get("/", headers=[("X-Trace", "abc")])
    assert response.status == 200
    assert b"FOO=from-raw-env" in response.body  # raw_env
    wait_for(lambda: access.exists() and access.read_text(), SOCKET_TIMEOUT, "an access line")
    assert access.read_text().splitlines()[0] == '200 GET / "abc" yes'  # accesslog + format
    lines = marks.read_text().splitlines()
    assert f"when_ready {srv.pid} 2" in lines  # when_ready, with the master's pid
    forked = [line.split() for line in lines if line.startswith("post_fork")]
    assert sorted(int(age) for _, _, age in forked) == [
        1,
        2,
    ]  # post_fork, once per worker (ages from 1)
    assert {int(pid) for _, pid, _ in forked} == set(srv.worker_pids())
    mark = srv.log_mark()
    srv.exchange(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n", timeout=30)
    srv.wait_log(r"WORKER TIMEOUT \(pid:\d+\) handling GET /hang", timeout=20, since=mark)


def test_precedence_file_then_env_then_command_line(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 2\ntimeout = 7\nkeepalive = 9\n")
    env = {"PATH": "/usr/bin:/bin", "FERRICORN_CMD_ARGS": "-w 3 --keep-alive 4"}
    out = run(["--print-config", "-w", "5", APP], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    values = printed(out.stdout)
    assert (values["workers"], values["keepalive"], values["timeout"]) == ("5", "4", "7")
    env = {"PATH": "/usr/bin:/bin", "GUNICORN_CMD_ARGS": "--keep-alive 6"}
    values = printed(run(["--print-config", APP], tmp_path, env=env).stdout)
    assert (values["workers"], values["keepalive"]) == ("2", "6")
    both = dict(env, FERRICORN_CMD_ARGS="--keep-alive 8")
    assert printed(run(["--print-config", APP], tmp_path, env=both).stdout)["keepalive"] == "8"


def test_ferricorn_conf_py_is_preferred_and_python_module_works(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 2\n")
    values = printed(run(["--print-config", APP], tmp_path).stdout)
    assert values["workers"] == "2"
    (tmp_path / "ferricorn.conf.py").write_text("workers = 4\n")
    assert printed(run(["--print-config", APP], tmp_path).stdout)["workers"] == "4"
    (tmp_path / "myconf.py").write_text("workers = 6\nwsgi_app = 'apps.config_app:app'\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    out = run(["-c", "python:myconf", "--print-config"], tmp_path, env=env)
    assert printed(out.stdout)["workers"] == "6", out.stderr


def test_regression_print_config_names_the_gunicorn_conf_py_it_read(tmp_path):
    """`--print-config` showed `config = None` though ./gunicorn.conf.py was read; gunicorn
    27, run on the same directory, shows the file."""
    (tmp_path / "gunicorn.conf.py").write_text("workers = 3\n")
    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    pass\n")
    theirs = subprocess.run(
        gunicorn_command() + ["--print-config", "app:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = run(["--print-config", "app:app"], tmp_path)
    assert printed(theirs.stdout)["workers"] == printed(ours.stdout)["workers"] == "3"
    assert printed(ours.stdout)["config"] == printed(theirs.stdout)["config"]
    assert printed(ours.stdout)["config"] == "./gunicorn.conf.py"


def test_unsupported_gunicorn_setting_is_named_in_a_warning(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("sendfile = False\nhelper = 1\n")
    out = run(["--print-config", APP], tmp_path)
    assert out.returncode == 0
    assert re.search(r"\[WARNING\] .*'sendfile' is not supported", out.stderr), out.stderr
    assert "helper" not in out.stderr  # a module-level name that is no setting is not one


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise ValueError('nope')\n", r"ValueError: nope \(at .*bad\.conf\.py:1\)"),
        ("workers = (\n", r"SyntaxError"),
        ("workers = 'many'\n", r"--workers .many.: expected a positive integer"),
        ("on_starting = 3\n", r"on_starting must be callable"),
    ],
)
def test_bad_config_file_is_one_error_and_exit_2(tmp_path, source, expected):
    (tmp_path / "bad.conf.py").write_text(source)
    out = run(["-c", "bad.conf.py", APP], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferricorn: error: "), out.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in out.stderr


def test_missing_config_file(tmp_path):
    out = run(["-c", "nowhere.py", APP], tmp_path)
    assert out.returncode == 2
    assert "config file 'nowhere.py' does not exist" in out.stderr


def test_check_config(tmp_path):
    good = run(["--check-config", "--chdir", str(TESTS_DIR), APP], tmp_path)
    assert good.returncode == 0, good.stderr
    bad = run(["--check-config", "--chdir", str(TESTS_DIR), "apps.nope:app"], tmp_path)
    assert bad.returncode == 1
    assert "Failed to load the application" in bad.stderr


def test_a_hook_that_raises_is_logged_and_the_server_serves(server_factory, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(
        textwrap.dedent(
            """
            def on_starting(server):
                raise RuntimeError("on_starting broke")

            def pre_request(worker, req):
                worker.log.info("pre_request %s %s", req.method, req.path)
                if req.path == "/boom":
                    raise KeyError("pre_request broke")

            def post_request(worker, req, environ, resp):
                worker.log.info("post_request %s %s %s", req.path, resp.status, resp.sent)

            def nworkers_changed(server, new, old):
                server.log.info("nworkers_changed %s -> %s", old, new)
            """
        )
    )
    srv = server_factory(APP, "-c", str(conf), worker_class="async")
    srv.wait_log(r"Exception in on_starting hook")
    assert "RuntimeError: on_starting broke" in srv.stderr
    assert srv.get("/boom").status == 200
    srv.wait_log(r"Exception in pre_request hook")
    srv.wait_log(r"post_request /boom 200 OK \d+")
    srv.signal(__import__("signal").SIGTTIN)
    srv.wait_log(r"nworkers_changed 1 -> 2")
