"""``pre_request`` and ``post_request`` on ``-k asgi``, beside gunicorn 27's ``-k asgi``:
the same config file (tests/apps/asgi_hooks_conf.py) records what each server's hooks
are handed, for the same requests, and the records are compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TESTS_DIR, Client, gunicorn_command, start_server, wait_for

APP = "apps.tiny_asgi:app"
CONF = str(TESTS_DIR / "apps" / "asgi_hooks_conf.py")
PEERS = ["ferricorn", "gunicorn"]


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line]


def request(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: hooks.test\r\nX-Hook: yes\r\n{extra}\r\n".encode()


def life(peer: str, tmp: Path, *extra: str) -> tuple[list, list[dict], str]:
    """The statuses of one run's requests, its hook records (pid left out), its log."""
    record = tmp / f"{peer}.jsonl"
    command = gunicorn_command() if peer == "gunicorn" else None
    args = ("-c", CONF, *extra)
    server = start_server(
        APP, *args, worker_class="asgi", command=command, env={"HOOK_RECORD": str(record)}
    )
    statuses = []
    try:
        with Client(server.address()) as client:
            # Two on one connection: the hooks of the first end before the second begins.
            client.send(request("/hello?x=1") + request("/hello?x=1"))
            statuses += [client.read_response().status for _ in range(2)]
            client.send(request("/boom"))
            statuses.append(client.read_response().status)
        for target, fail in (("/hello", "pre"), ("/hello", "post")):
            with Client(server.address()) as client:
                client.send(request(target, f"X-Fail: {fail}\r\nConnection: close\r\n"))
                statuses.append(client.read_response().status)
        wait_for(lambda: len(records(record)) >= 10, 20, f"{peer}: ten hook calls")
        server.wait_log(r"Exception in post_request hook")
    finally:
        server.stop()
    seen = records(record)
    for r in seen:
        r.pop("pid")
    return statuses, seen, server.stderr


@pytest.mark.parametrize("access", [True, False], ids=["access-log", "no-access-log"])
def test_hooks_see_what_gunicorns_asgi_hooks_see(tmp_path, access):
    extra = ("--access-logfile", str(tmp_path / "access.log")) if access else ()
    lives = {peer: life(peer, tmp_path, *extra) for peer in PEERS}
    ours, theirs = lives["ferricorn"], lives["gunicorn"]
    assert ours[0] == theirs[0] == [200, 200, 500, 500, 200]
    for mine, gunicorns in zip(ours[1], theirs[1], strict=True):
        assert mine == gunicorns
    hooks = [r["hook"] for r in ours[1]]
    assert hooks == ["pre_request", "post_request"] * 5
    assert [r["nr"] for r in ours[1]] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    first = ours[1][0]["req"]
    assert (first["uri"], first["query"], first["has"]["body"]) == ("/hello?x=1", "x=1", False)
    post = ours[1][1]
    if access:
        assert post["resp"]["status"] == 200 and post["resp"]["status_type"] == "int"
        assert post["environ"]["PATH_INFO"] == "/hello"
        assert ours[1][5]["resp"]["status"] == 500  # the app raised: gunicorn's 500
    else:
        assert (post["environ"], post["resp"]) == (None, None)
    for _, _, log in lives.values():
        # A pre_request that raises is the app failing; one in post_request is logged.
        assert "Error in ASGI application" in log and "pre_request says no" in log
        assert "post_request says no" in log


def test_no_hooks_load_nothing():
    """Without either hook the worker runs the app as it would without hooks at all."""
    from ferricorn import _asgi_hooks, _config

    saved = dict(_config.hooks)
    try:
        _config.hooks.clear()
        assert _asgi_hooks.load(True) is None
        _config.hooks["post_request"] = lambda *a: None
        assert _asgi_hooks.load(True).pre is None
    finally:
        _config.hooks.clear()
        _config.hooks.update(saved)
