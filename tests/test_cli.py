"""The command line and the master process: flags, app loading, binds, signals, logs."""

import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    TESTS_DIR,
    Client,
    build_request,
    connect,
    exchange,
    free_port,
    parse_response,
    pid_alive,
    read_until_close,
    run_cli,
    wait_for,
)

APP = "apps.cases:app"
EXIT_USAGE = 2  # bad flags, as argparse and gunicorn
EXIT_APP_LOAD = 4  # gunicorn's APP_LOAD_ERROR
LOAD_DEADLINE = 15.0
LOG_LINE_RE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] "
    r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] "
)


def no_crash_text(text):
    assert "Traceback" not in text, text
    assert "panicked" not in text, text
    assert "RUST_BACKTRACE" not in text, text


# --- flags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--nope"],
        ["-w", "abc"],
        ["--workers=abc"],
        ["-w", "0"],
        ["-w", "-3"],
        ["--bind", "127.0.0.1:notaport"],
        ["--bind", "127.0.0.1:99999"],
        ["--bind", "[::1"],
        ["--log-level", "loud"],
        ["-k", "nope"],
        ["--graceful-timeout", "soon"],
        ["--threads", "0"],
        ["--threads", "many"],
        ["--worker-connections", "0"],
        ["--worker-connections", "lots"],
        ["--keep-alive", "soon"],
        ["--keep-alive", "-1"],
    ],
    ids=lambda args: " ".join(args),
)
def test_bad_flag_exits_2_with_one_line(args):
    result = run_cli(*args, APP)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ferricorn: error: "), lines[0]
    no_crash_text(result.stderr + result.stdout)


@pytest.mark.parametrize("name", ["tornado"])
def test_greenlet_worker_classes_point_to_async(name):
    result = run_cli("-k", name, APP)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and "async" in lines[0], lines[0]
    no_crash_text(result.stderr + result.stdout)


def test_missing_app_module_is_a_usage_error():
    result = run_cli("--bind", "127.0.0.1:0")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    no_crash_text(result.stderr)


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(flag):
    result = run_cli(flag)
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert "ferricorn" in output


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = run_cli(flag)
    assert result.returncode == 0, result.stderr
    assert "--bind" in result.stdout
    assert "--workers" in result.stdout


# --- loading the app --------------------------------------------------------------------------


def _frames(text):
    return re.findall(r'File "([^"]+)", line (\d+)', text)


def _ferricorn_package_dir():
    import ferricorn

    return str(Path(ferricorn.__file__).resolve().parent)


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("no_such_module_xyz:app", "no_such_module_xyz"),
        ("apps.echo:nope", "nope"),
        ("apps.factories:not_callable", "not_callable"),
        ("apps.factories:create_app(os.getcwd())", "literal"),
        ("apps.factories:no_factory()", "no_factory"),
    ],
    ids=["module-not-found", "missing-attribute", "not-callable", "non-literal-args", "no-factory"],
)
def test_app_load_failure_exits_once(spec, needle):
    started = time.monotonic()
    result = run_cli("--bind", "127.0.0.1:0", "-w", "4", spec)
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_APP_LOAD, result.stderr
    assert elapsed < LOAD_DEADLINE
    assert result.stderr.count("Reason: App failed to load.") == 1, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if needle in line]
    assert len(error_lines) == 1, result.stderr  # said once, not once per worker or respawn
    assert len(re.findall(r"Booting worker with pid", result.stderr)) <= 4, result.stderr
    assert "panicked" not in result.stderr


def test_app_raising_at_import_shows_its_traceback_once():
    result = run_cli("--bind", "127.0.0.1:0", "-w", "4", "apps.broken_import:app")
    assert result.returncode == EXIT_APP_LOAD, result.stderr
    assert result.stderr.count("RuntimeError: kaboom at import") == 1, result.stderr
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr
    frames = _frames(result.stderr)
    app_file = TESTS_DIR / "apps" / "broken_import.py"
    raise_line = next(
        number
        for number, text in enumerate(app_file.read_text().splitlines(), 1)
        if "kaboom at import" in text
    )
    assert (str(app_file), str(raise_line)) in [(str(Path(f).resolve()), n) for f, n in frames], (
        result.stderr
    )
    package_dir = _ferricorn_package_dir()
    assert [f for f, _ in frames if f.startswith(package_dir)] == [], result.stderr
    assert "panicked" not in result.stderr
    assert result.stderr.count("Reason: App failed to load.") == 1


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("apps.factories:create_app()", {"args": [], "kwargs": {}}),
        ("apps.factories:create_app('x', debug=True)", {"args": ["x"], "kwargs": {"debug": True}}),
    ],
)
def test_app_factory(server_factory, spec, expected):
    srv = server_factory(spec)
    response = srv.get("/")
    assert response.status == 200
    assert json.loads(response.body) == expected


def test_default_attribute_is_application(server_factory, tmp_path):
    (tmp_path / "defaultapp.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'default attribute']\n"
    )
    srv = server_factory("defaultapp", cwd=tmp_path)
    assert srv.get("/").body == b"default attribute"


def test_python_dash_m(server_factory):
    srv = server_factory(APP, command=[sys.executable, "-m", "ferricorn"])
    assert srv.get("/hello").body == b"hello\n"


# --- binds and environment --------------------------------------------------------------------


def test_unix_socket_bind_and_cleanup(server_factory, worker_class):
    directory = tempfile.mkdtemp(prefix="fc-")
    path = os.path.join(directory, "ferricorn.sock")
    try:
        srv = server_factory(APP, binds=(f"unix:{path}",), worker_class=worker_class)
        assert os.path.exists(path)
        with Client(path) as client:  # two requests: one connection on async
            for _ in range(2 if worker_class == "async" else 1):
                client.send(build_request("GET", "/hello"))
                response = client.read_response()
                assert response.status == 200
                assert response.body == b"hello\n"
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit() == 0
        assert not os.path.exists(path), "the socket file outlived the server"
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def test_two_binds_serve_on_both(server_factory):
    srv = server_factory(APP, binds=("127.0.0.1:0", "127.0.0.1:0"))
    ports = srv.ports
    assert len(ports) == 2 and ports[0] != ports[1], srv.listening()
    for port in ports:
        result = exchange(("127.0.0.1", port), [build_request("GET", "/hello")])
        assert result.response.status == 200


def test_env_flag_reaches_app(server_factory):
    srv = server_factory(APP, "-e", "FERRI_ONE=1", "--env=FERRI_TWO=a=b c")
    assert json.loads(srv.get("/getenv?key=FERRI_ONE").body) == {"value": "1"}
    assert json.loads(srv.get("/getenv?key=FERRI_TWO").body) == {"value": "a=b c"}


def _write_module(directory, name, text):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        f"    return [{text!r}.encode()]\n"
    )


def test_chdir_makes_app_importable(server_factory, tmp_path):
    _write_module(tmp_path / "site", "chdirapp", "from chdir")
    srv = server_factory("chdirapp:app", "--chdir", str(tmp_path / "site"), cwd="/")
    assert srv.get("/").body == b"from chdir"


def test_pythonpath_makes_app_importable(server_factory, tmp_path):
    _write_module(tmp_path / "one", "pathapp_one", "one")
    _write_module(tmp_path / "two", "pathapp_two", "two")
    paths = f"{tmp_path / 'one'},{tmp_path / 'two'}"
    srv = server_factory("pathapp_two:app", "--pythonpath", paths, cwd="/")
    assert srv.get("/").body == b"two"


def test_port_environment_sets_default_bind(server_factory):
    port = free_port()
    args = ["-w", "1", APP]
    srv = server_factory.spawn(args, env={"PORT": str(port)})
    srv.wait_ready()
    assert srv.listening() == [f"http://0.0.0.0:{port}"]
    result = exchange(("127.0.0.1", port), [build_request("GET", "/hello")])
    assert result.response.status == 200


def test_web_concurrency_sets_worker_count(server_factory):
    srv = server_factory.spawn(["--bind", "127.0.0.1:0", APP], env={"WEB_CONCURRENCY": "3"})
    srv.wait_ready(workers=3)
    wait_for(lambda: len(srv.worker_pids()) == 3, SOCKET_TIMEOUT, "3 worker processes")
    assert len(srv.booted_workers()) == 3


# --- signals ----------------------------------------------------------------------------------


def _request_in_background(srv, target):
    """Sends a request on a thread; returns (thread, result box)."""
    box = {}

    def run():
        try:
            box["result"] = exchange(srv.address(), [build_request("GET", target)], timeout=40)
        except Exception as exc:  # the assertion happens on the main thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_term_lets_request_in_flight_finish(server_factory, worker_class):
    srv = server_factory(APP, "--graceful-timeout", "10", worker_class=worker_class)
    mark = srv.log_mark()
    thread, box = _request_in_background(srv, "/sleep?s=1&token=graceful1")
    srv.wait_log(r"sleep start graceful1", since=mark)
    sent = time.monotonic()
    srv.signal(signal.SIGTERM)
    code = srv.wait_exit(15)
    took = time.monotonic() - sent
    thread.join(SOCKET_TIMEOUT)
    assert "error" not in box, box
    response = box["result"].response
    assert response is not None and response.status == 200
    assert response.body == b"slept\n"
    assert code == 0, srv.stderr
    assert took < 10, f"master took {took:.1f}s to exit after TERM"
    assert srv.leftovers() == []


def test_term_kills_request_past_graceful_timeout(server_factory, worker_class):
    srv = server_factory(APP, "--graceful-timeout", "1", worker_class=worker_class)
    workers = srv.worker_pids()
    mark = srv.log_mark()
    thread, box = _request_in_background(srv, "/sleep?s=30&token=slow1")
    srv.wait_log(r"sleep start slow1", since=mark)
    sent = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.wait_exit(8)
    took = time.monotonic() - sent
    thread.join(SOCKET_TIMEOUT)
    assert took < 5, f"master took {took:.1f}s to exit after TERM with --graceful-timeout 1"
    wait_for(lambda: not any(pid_alive(p) for p in workers), 5, "the killed worker to be gone")
    result = box.get("result")
    assert result is None or result.response is None or result.response.body != b"slept\n"


# Requests that a client abandons halfway, closing its connection.
ABANDONED = {
    "partial-head": b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Part",
    "partial-body": (
        b"POST /short-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes."
    ),
}


@pytest.mark.parametrize("sent", ABANDONED)
def test_abandoned_request_does_not_delay_term(server_factory, worker_class, sent):
    """A connection whose client has gone is not a request in flight: TERM does not wait
    for it (here, up to a --graceful-timeout of 30 s)."""
    srv = server_factory(APP, "--graceful-timeout", "30", worker_class=worker_class)
    with connect(srv.address()) as sock:
        sock.sendall(ABANDONED[sent])
    assert srv.get("/hello").status == 200  # the worker has been round its loop since
    sent_at = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(8) == 0, srv.stderr
    took = time.monotonic() - sent_at
    assert took < 5, f"master took {took:.1f}s to exit after TERM"
    assert srv.leftovers() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_quick_shutdown(server_factory, signum, worker_class):
    srv = server_factory(APP, workers=2, worker_class=worker_class)
    workers = srv.worker_pids()
    assert len(workers) == 2
    mark = srv.log_mark()
    thread, _ = _request_in_background(srv, "/sleep?s=30&token=quick")
    srv.wait_log(r"sleep start quick", since=mark)
    sent = time.monotonic()
    srv.signal(signum)
    srv.wait_exit(10)
    took = time.monotonic() - sent
    assert took < 3, f"master took {took:.1f}s to exit after {signal.Signals(signum).name}"
    wait_for(lambda: not any(pid_alive(p) for p in workers), 3, "every worker to be gone")
    assert srv.leftovers(timeout=1) == []
    thread.join(SOCKET_TIMEOUT)


def test_killed_worker_is_respawned(server_factory, worker_class):
    srv = server_factory(APP, workers=2, worker_class=worker_class)
    before = srv.worker_pids()
    assert len(before) == 2
    victim = before[0]
    os.kill(victim, signal.SIGKILL)  # a worker of the server this test started
    wait_for(
        lambda: len(srv.worker_pids()) == 2 and victim not in srv.worker_pids(),
        SOCKET_TIMEOUT,
        "a replacement worker",
    )
    replacement = (set(srv.worker_pids()) - set(before)).pop()
    srv.wait_log(rf"Booting worker with pid: {replacement}")
    for _ in range(4):
        assert srv.get("/hello").status == 200


# --- logging ----------------------------------------------------------------------------------


def test_log_lines_follow_gunicorn_layout(server_factory, worker_class):
    srv = server_factory(APP, workers=2, worker_class=worker_class)
    assert srv.get("/hello").status == 200
    lines = srv.stderr.splitlines()
    assert lines, "no log output"
    bad = [line for line in lines if not LOG_LINE_RE.match(line)]
    assert bad == [], bad
    text = srv.stderr
    assert re.search(rf"\[{srv.pid}\] \[INFO\] Listening at: http://127\.0\.0\.1:\d+ ", text)
    assert re.search(rf"\[{srv.pid}\] \[INFO\] Using worker: {worker_class}", text)
    booted = srv.booted_workers()
    assert sorted(booted) == sorted(srv.worker_pids())
    for pid in booted:  # the worker logs its own boot line, under its own pid
        assert re.search(rf"\[{pid}\] \[INFO\] Booting worker with pid: {pid}$", text, re.M)


def test_log_level_warning_hides_info(server_factory):
    srv = server_factory.spawn(["--bind", "127.0.0.1:0", "--log-level", "warning", APP])
    wait_for(
        lambda: _connectable_any(srv) or srv.proc.poll() is not None,
        SOCKET_TIMEOUT,
        "the server",
    )
    assert srv.proc.poll() is None, srv.stderr
    assert "[INFO]" not in srv.stderr


def _connectable_any(srv):
    for port in _ports_from_proc(srv.pid):
        try:
            with connect(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(build_request("GET", "/hello"))
                raw, _ = read_until_close(sock)
                return parse_response(raw).status == 200
        except OSError:
            continue
    return False


def _ports_from_proc(pid):
    """Listening TCP ports of ``pid``, for a server that does not log its address."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.append(int(fields[1].split(":")[1], 16))
    return ports


def test_connection_to_stopped_server_is_refused(server_factory):
    srv = server_factory(APP)
    port = srv.port
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    with pytest.raises(OSError):
        connect(("127.0.0.1", port), timeout=SOCKET_TIMEOUT).close()
