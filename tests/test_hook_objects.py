"""Drop-in, hooks family: the objects gunicorn's hooks rely on (issue 9, item 9).

``dropin/hook_recorder.py`` records, from every hook, what it sees of ``server``,
``worker`` and ``req``; the same file runs on ferricorn and on a live gunicorn 27 through
the same life (two workers, two requests, a worker killed and replaced, TTIN, TERM), and
the facts that must match are compared: names, arities, address tuples, the relations of
``worker.pid``, ``age`` and ``nr``, ``old=None`` at start, authentik's worker ids.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from conftest import TESTS_DIR, Server, ferricorn_command, gunicorn_command, wait_for

APP = "dropin.app:app"
GUNICORN = gunicorn_command()
SERVERS = {"ferricorn": ferricorn_command(), "gunicorn": GUNICORN}
RECORDER = TESTS_DIR / "dropin" / "hook_recorder.py"
DEADLINE = 20.0


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # What follows the last newline is a line still being written.
    lines = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def calls(records: list[dict], hook: str) -> list[dict]:
    return [r for r in records if r["hook"] == hook]


def get(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: hooks.test\r\nX-Hook: yes\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def live(name: str, tmp: Path, extra: list[str]) -> tuple[list[dict], Server]:
    """One server's life under the recorder; its records once it has exited."""
    record = tmp / f"{name}.jsonl"
    server = Server(
        ["-c", str(RECORDER), "--bind", "127.0.0.1:0", *extra, APP],
        command=SERVERS[name],
        env={"HOOK_RECORD": str(record)},
    )

    def seen(hook: str, n: int) -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{server.stderr}")
        return len(calls(read_records(record), hook)) >= n

    try:
        server.wait_ready(workers=2)
        wait_for(lambda: seen("post_worker_init", 2), DEADLINE, f"{name}: two workers")
        for target in ("/hello?x=1#top", "/hello?x=1#top"):
            assert get(server.port, target).endswith(b"ok")
        wait_for(lambda: seen("post_request", 2), DEADLINE, f"{name}: post_request")
        first = calls(read_records(record), "post_fork")[0]["getpid"]
        os.kill(first, signal.SIGTERM)
        wait_for(lambda: seen("post_worker_init", 3), DEADLINE, f"{name}: a replacement")
        server.signal(signal.SIGTTIN)
        wait_for(lambda: seen("post_worker_init", 4), DEADLINE, f"{name}: TTIN's worker")
        port = server.port
    finally:
        server.stop()
    records = read_records(record)
    for r in records:
        r["port"] = port
        r["master"] = server.pid
    return records, server


@pytest.fixture(scope="module", params=["sync", "gthread"])
def lives(request, tmp_path_factory) -> dict[str, list[dict]]:
    """Both servers' lives, with the sync worker and with gthread (ferricorn's async)."""
    tmp = tmp_path_factory.mktemp(f"hooks-{request.param}")
    extra = ["-k", "gthread", "--threads", "2"] if request.param == "gthread" else []
    return {name: live(name, tmp, extra)[0] for name in SERVERS}


def test_regression_nworkers_changed_runs_at_start_with_old_none(lives):
    for name, records in lives.items():
        master = [r["hook"] for r in records if r["process"] == r["master"]]
        assert master[:3] == ["nworkers_changed", "on_starting", "when_ready"], name
        start = calls(records, "nworkers_changed")[0]
        assert (start["new"], start["old"], start["has_cfg"]) == (2, None, True), name
        ttin = calls(records, "nworkers_changed")[1]
        assert (ttin["new"], ttin["old"]) == (3, 2), name


def server_facts(record: dict) -> dict:
    server = record["server"]
    port = record["port"]
    return {
        "address": server["address"],
        "listeners": [s.replace(f":{port}", ":PORT") for s in server["listeners"]],
        "listener_names": [[h, p == port] for h, p in server["listener_names"]],
        "listener_fds": server["listener_fds"],
        "proc_name": server["proc_name"],
        "pid": server["pid"] == record["master"],
        "num_workers": server["num_workers"],
        "timeout": server["timeout"],
        "log": server["log"],
        "kinds": server["kinds"],
    }


def test_regression_server_has_address_listeners_and_proc_name(lives):
    facts = {}
    for name, records in lives.items():
        facts[name] = {
            "on_starting": server_facts(calls(records, "on_starting")[0]),
            "when_ready": server_facts(calls(records, "when_ready")[0]),
        }
    assert facts["ferricorn"] == facts["gunicorn"]
    ready = facts["ferricorn"]["when_ready"]
    assert ready["address"] == [["127.0.0.1", 0]]
    assert ready["listeners"] == ["http://127.0.0.1:PORT"]
    assert facts["ferricorn"]["on_starting"]["listeners"] == []


def test_regression_cfg_has_gunicorns_names_types_and_values(lives):
    cfgs = {name: calls(r, "when_ready")[0]["server"]["cfg"] for name, r in lives.items()}
    ours, theirs = cfgs["ferricorn"], cfgs["gunicorn"]
    differing = {
        name: (ours["types"].get(name), kind)
        for name, kind in theirs["types"].items()
        if ours["types"].get(name) != kind
    }
    assert differing == {}
    assert ours["values"] == theirs["values"]
    assert (ours["setting"], ours["address"]) == (theirs["setting"], theirs["address"])


def worker_facts(records: list[dict]) -> dict:
    master = records[0]["master"]
    pre = calls(records, "pre_fork")
    post = calls(records, "post_fork")
    init = calls(records, "post_worker_init")
    port = records[0]["port"]
    return {
        "pre_fork_pid": [r["worker"]["pid"] for r in pre],
        "pre_fork_ages": [r["worker"]["age"] for r in pre],
        "post_fork_ages": sorted(r["worker"]["age"] for r in post),
        "post_fork_pid_is_own": all(r["worker"]["pid"] == r["getpid"] for r in post),
        "ppid_is_master": all(r["worker"]["ppid"] == master for r in post + init),
        "timeout": {r["worker"]["timeout"] for r in post + init},
        "sockets": {s.replace(f":{port}", ":PORT") for r in init for s in r["worker"]["sockets"]},
        "wsgi_in_post_fork": {r["worker"]["wsgi"] for r in post},
        "wsgi_in_post_worker_init": {r["worker"]["wsgi"] for r in init},
        "app_wsgi": {r["worker"]["app_wsgi"] for r in post + init},
        "booted_in_post_worker_init": {r["worker"]["booted"] for r in init},
        "nr_at_boot": {r["worker"]["nr"] for r in init},
        "cfg_workers": {r["worker"]["cfg_workers"] for r in post + init},
        "log": {r["worker"]["log"] for r in post + init},
        "kinds": [r["worker"]["kinds"] for r in init][:1],
        "workers_seen_by_pre_fork": [len(r["server"]["workers"]) for r in pre],
    }


def test_regression_worker_has_app_wsgi_nr_sockets_pid_age(lives):
    facts = {name: worker_facts(records) for name, records in lives.items()}
    assert facts["ferricorn"] == facts["gunicorn"]
    ours = facts["ferricorn"]
    assert ours["pre_fork_pid"] == ["[booting]"] * 4
    assert ours["pre_fork_ages"] == [1, 2, 3, 4]
    assert ours["wsgi_in_post_fork"] == {False}
    assert ours["wsgi_in_post_worker_init"] == {True}


def request_facts(records: list[dict]) -> dict:
    port = records[0]["port"]
    pre = calls(records, "pre_request")
    post = calls(records, "post_request")

    def req(r):
        facts = dict(r["req"])
        facts["remote_addr"] = [facts["remote_addr"][0], type(facts["remote_addr"][1]).__name__]
        facts["peer_addr"] = [facts["peer_addr"][0], type(facts["peer_addr"][1]).__name__]
        return facts

    # Per worker, pre_request sees the requests before this one, post_request this one too.
    steps = {}
    for r in (r for r in records if r["hook"] in ("pre_request", "post_request")):
        steps.setdefault(r["worker"]["pid"], []).append((r["hook"], r["worker"]["nr"]))
    counted = all(
        seq[i + 1][1] == seq[i][1] + (1 if seq[i][0] == "pre_request" else 0)
        for seq in steps.values()
        for i in range(len(seq) - 1)
    )
    return {
        "req": [req(r) for r in pre + post],
        "response": [(r["environ"], r["status"], r["status_code"], r["sent"]) for r in post],
        "nr_counts_requests": counted,
        "nr_first": sorted(seq[0] for seq in steps.values())[:1],
        "port": port > 0,
    }


def test_regression_req_has_body_remote_addr_peer_addr(lives):
    facts = {name: request_facts(records) for name, records in lives.items()}
    assert facts["ferricorn"] == facts["gunicorn"]
    first = facts["ferricorn"]["req"][0]
    assert first["remote_addr"] == ["127.0.0.1", "int"]
    assert first["kinds"]["peer_addr"] == "tuple"
    assert first["body"] is True


def test_regression_attributes_set_in_one_hook_reach_the_next(lives):
    """authentik's worker ids: ``server._worker_id_overload`` from on_starting, an id on
    ``worker`` in pre_fork, read in post_fork and child_exit, given back on respawn."""
    ids = {}
    for name, records in lives.items():
        # Children append their post_fork lines in whichever order they run.
        post = [r["worker_id"] for r in calls(records, "post_fork")]
        exits = calls(records, "child_exit")
        ids[name] = {
            "first_two": sorted(post[:2]),
            "respawn_reuses_the_exited_id": post[2] == exits[0]["worker_id"],
            "ttin": post[3],
            # Every worker exits once at the stop; the killed one exited before.
            "exits": sorted(r["worker_id"] for r in exits[1:]),
        }
    assert ids["ferricorn"] == ids["gunicorn"]
    assert ids["ferricorn"] == {
        "first_two": [1, 2],
        "respawn_reuses_the_exited_id": True,
        "ttin": 3,
        "exits": [1, 2, 3],
    }


def test_regression_worker_exit_sees_the_worker_pre_fork_made(lives):
    facts = {}
    for name, records in lives.items():
        exits = calls(records, "worker_exit")
        reaped = calls(records, "child_exit")
        facts[name] = {
            "ids_as_child_exit": sorted(r["worker_id"] for r in exits)
            == sorted(r["worker_id"] for r in reaped),
            "count": len(exits),
            "on_exit": len(calls(records, "on_exit")),
        }
    assert facts["ferricorn"] == facts["gunicorn"]
    # gunicorn's gthread worker closes its sockets first, so its record may hold an error.
    alive = {r["worker"]["alive"] for r in calls(lives["ferricorn"], "worker_exit")}
    assert alive == {False}


def when_ready(name: str, args: list[str], tmp: Path) -> dict:
    """``server`` as ``when_ready`` sees it, with ``args`` on the command line."""
    record = tmp / f"{name}-ready.jsonl"
    server = Server(args, command=SERVERS[name], env={"HOOK_RECORD": str(record)})
    try:
        wait_for(
            lambda: calls(read_records(record), "when_ready") or server.proc.poll() is not None,
            DEADLINE,
            f"{name}: when_ready",
        )
    finally:
        server.stop()
    ready = calls(read_records(record), "when_ready")
    assert ready, f"{name} did not start:\n{server.stderr}"
    return ready[0]["server"]


def test_regression_cfg_follows_the_command_line_as_gunicorn_does(tmp_path):
    seen = {}
    for name in SERVERS:
        sock = tmp_path / f"{name}.sock"
        args = ["-c", str(RECORDER), "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:0"]
        args += ["-b", f"unix:{sock}", "--max-requests", "100", "--umask", "022"]
        args += ["-e", "HOOKS=yes", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2"]
        args += ["--limit-request-line", "0", "--access-logfile", "-", "-n", "hooks"]
        args += ["-t", "60", "--graceful-timeout", "5", "--keep-alive", "7", "--proxy-protocol"]
        args += ["--proxy-allow-from", "10.0.0.0/8,127.0.0.1", APP]
        server = when_ready(name, args, tmp_path)
        server["cfg"]["values"]["bind"][1] = server["cfg"]["values"]["bind"][1].replace(name, "X")
        server["address"][1] = server["address"][1].replace(name, "X")
        seen[name] = {
            "cfg": server["cfg"]["values"],
            "types": server["cfg"]["types"],
            "address": server["address"],
            "proc_name": server["proc_name"],
            "timeout": server["timeout"],
            "listeners": [
                lnr.startswith(("http://127.0.0.1:", "unix:")) for lnr in server["listeners"]
            ],
        }
    ours, theirs = seen["ferricorn"].pop("types"), seen["gunicorn"].pop("types")
    assert {n: (ours.get(n), kind) for n, kind in theirs.items() if ours.get(n) != kind} == {}
    assert seen["ferricorn"] == seen["gunicorn"]
    assert seen["ferricorn"]["cfg"]["worker_class_str"] == "gthread"


def test_regression_hup_calls_nworkers_changed_before_on_reload(tmp_path):
    """gunicorn's HUP sets the worker count from the new settings (``nworkers_changed``,
    even with the count unchanged), then calls ``on_reload``; authentik's hooks rely on
    the order to hand the ids out again."""
    seen = {}
    for name in SERVERS:
        record = tmp_path / f"{name}-hup.jsonl"
        server = Server(
            ["-c", str(RECORDER), "-b", "127.0.0.1:0", APP],
            command=SERVERS[name],
            env={"HOOK_RECORD": str(record)},
        )
        try:
            server.wait_ready(workers=2)
            wait_for(
                lambda r=record: len(calls(read_records(r), "post_worker_init")) >= 2,
                DEADLINE,
                f"{name}: two workers",
            )
            server.signal(signal.SIGHUP)
            wait_for(
                lambda r=record: len(calls(read_records(r), "post_worker_init")) >= 4,
                DEADLINE,
                f"{name}: the workers HUP starts",
            )
        finally:
            server.stop()
        records = read_records(record)
        master = [
            (r["hook"], r.get("new"), r.get("old"))
            for r in records
            if r["process"] == server.pid and r["hook"] not in ("pre_fork", "child_exit")
        ]
        reload_ids = [r["worker_id"] for r in calls(records, "post_fork")[2:4]]
        seen[name] = {"master": master[:5], "reload_ids": sorted(reload_ids)}
    assert seen["ferricorn"] == seen["gunicorn"]
    assert seen["ferricorn"]["master"][3:5] == [
        ("nworkers_changed", 2, 2),
        ("on_reload", None, None),
    ]


CONFIG_FILE = """\
import sys

sys.path.insert(0, TESTS)
from dropin.hook_recorder import *  # noqa: F403 - the recorder's hooks

backlog = 64
preload_app = True
max_requests_jitter = 5
raw_env = ["HOOKS=1", "MORE=2"]
secure_scheme_headers = {"X-PROTO": "https"}
forwarded_allow_ips = "*"
tmp_upload_dir = "/tmp/uploads"
proxy_protocol = True
proxy_allow_ips = "10.0.0.0/8, 127.0.0.1"
"""


def test_regression_cfg_reads_a_config_files_values_as_gunicorn_does(tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(CONFIG_FILE.replace("TESTS", repr(str(TESTS_DIR)), 1))
    seen = {}
    for name in SERVERS:
        server = when_ready(name, ["-c", str(conf), "-b", "127.0.0.1:0", APP], tmp_path)
        seen[name] = server["cfg"]
    ours, theirs = seen["ferricorn"], seen["gunicorn"]
    assert {
        n: (ours["types"].get(n), t)
        for n, t in theirs["types"].items()
        if ours["types"].get(n) != t
    } == {}
    assert ours["values"] == theirs["values"]
    assert ours["values"]["tmp_upload_dir"] == "/tmp/uploads"
    assert ours["values"]["secure_scheme_headers"] == {"X-PROTO": "https"}
    assert ours["values"]["proxy_protocol"] == "auto"


def test_regression_worker_int_gets_the_worker_on_a_fast_stop(tmp_path):
    """INT to the master: each worker runs ``worker_int`` with its own ``worker``, then
    ``worker_exit``."""
    seen = {}
    for name in SERVERS:
        record = tmp_path / f"{name}-int.jsonl"
        server = Server(
            ["-c", str(RECORDER), "-b", "127.0.0.1:0", "-w", "1", APP],
            command=SERVERS[name],
            env={"HOOK_RECORD": str(record)},
        )
        try:
            server.wait_ready()
            wait_for(lambda r=record: calls(read_records(r), "post_worker_init"), DEADLINE, name)
            assert get(server.port, "/").endswith(b"ok")
            server.signal(signal.SIGINT)
            server.wait_exit()
        finally:
            server.stop()
        records = read_records(record)
        (interrupted,) = calls(records, "worker_int")
        worker = interrupted["worker"]
        seen[name] = {
            "own": worker["pid"] == interrupted["process"],
            "ppid": worker["ppid"] == server.pid,
            "age": worker["age"],
            "alive": worker["alive"],
            "nr": worker["nr"],
            "id": interrupted["worker_id"],
            "then": [r["hook"] for r in records if r["process"] == interrupted["process"]][-2:],
        }
    assert seen["ferricorn"] == seen["gunicorn"]
    assert seen["ferricorn"]["then"] == ["worker_int", "worker_exit"]


def test_cfg_defaults_table_is_gunicorns():
    """``ferricorn._settings.DEFAULTS`` is gunicorn 27's list of settings and defaults."""
    from ferricorn import _settings
    from gunicorn import config as gunicorn_config

    theirs = gunicorn_config.Config().settings
    assert set(_settings.DEFAULTS) | set(_settings.HOOK_SETTINGS) == set(theirs)
    assert set(_settings.HOOK_SETTINGS) == {n for n, s in theirs.items() if callable(s.get())}
    machine = {"chdir", "user", "group", "control_socket"}  # filled in at start
    differing = {
        name: (value, theirs[name].get())
        for name, value in _settings.DEFAULTS.items()
        if name not in machine and value != theirs[name].get()
    }
    assert differing == {}
