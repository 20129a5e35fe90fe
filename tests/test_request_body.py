"""Request bodies: `--limit-request-body` (413 before the app runs) and the spool that keeps
a worker's memory for bodies bounded however many uploads arrive at once.

The async worker receives a body of up to 1 MiB whole before it calls the app; those bodies
share a memory budget of 32 MiB per worker (src/wsgi/spool.rs), and one the budget cannot
hold goes to an unlinked temporary file under `--worker-tmp-dir`. The tests see those files
as the worker's descriptors into that directory (/proc/PID/fd), since the directory itself
never lists them. gunicorn has no body limit, so only the large-body round trip is compared
with it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from apps import pattern
from conftest import (
    WORKER_CLASSES,
    Client,
    build_request,
    chunked,
    gunicorn_command,
    rss_kib,
    wait_for,
)

APP = "apps.bodies:app"
MIB = 1024 * 1024
LIMIT = 1000
# The async worker's memory budget for bodies (src/wsgi/spool.rs MEMORY_BUDGET), and the
# largest body it receives before the app runs (src/worker/conn.rs BODY_BUFFER).
BUDGET_MIB = 32
BODY_BUFFER = MIB
# Past the budget, what the worker may grow by for bodies (the budget, read buffers,
# allocator slack). Before the spool, 128 uploads of 1 MiB grew it by 128 MiB and more.
GROWTH_LIMIT_MIB = BUDGET_MIB + 24


@pytest.fixture
def calls(tmp_path) -> Path:
    """The file the app appends a line to per call."""
    return tmp_path / "calls"


def called(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def start(server_factory, worker_class, calls, *extra, **kwargs):
    env = {"BODIES_CALLS": str(calls)}
    return server_factory(APP, *extra, worker_class=worker_class, env=env, **kwargs)


def digest(body: bytes) -> dict:
    return {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}


def post(target: str, body: bytes, framing: str = "length") -> bytes:
    if framing == "chunked":
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        head = build_request("POST", target, [("Transfer-Encoding", "chunked")])
        return head + chunked(*pieces)
    return build_request("POST", target, body=body)


def send_and_read(server, raw: bytes, closes: bool = False):
    """One request on a fresh connection; with ``closes``, the server must close after the
    response and send nothing more."""
    with Client(server.address(), timeout=30) as client:
        client.send(raw)
        response = client.read_response()
        assert response is not None, "no response"
        if closes:
            assert "close" in response.header("Connection").lower(), response
            assert client.read_until_close() == b""
        return response


# --- --limit-request-body ------------------------------------------------------------------


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_declared_length_over_the_limit_gets_413_before_the_app(
    server_factory, worker_class, calls
):
    srv = start(server_factory, worker_class, calls, "--limit-request-body", str(LIMIT))
    # Only the head is sent: the answer comes without waiting for the body.
    head = build_request("POST", "/sha256", [("Content-Length", str(LIMIT + 1))])
    response = send_and_read(srv, head, closes=True)
    assert response.status == 413, response
    assert b"Content Too Large" in response.body
    assert called(calls) == 0, "the app was called for a refused body"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_expect_continue_over_the_limit_gets_413_without_100(server_factory, worker_class, calls):
    srv = start(server_factory, worker_class, calls, "--limit-request-body", str(LIMIT))
    headers = [("Content-Length", str(LIMIT * 10)), ("Expect", "100-continue")]
    response = send_and_read(srv, build_request("POST", "/sha256", headers))
    assert (response.status, response.interim) == (413, []), response
    assert called(calls) == 0


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_body_exactly_at_the_limit_passes(server_factory, worker_class, calls, framing):
    srv = start(server_factory, worker_class, calls, "--limit-request-body", str(LIMIT))
    body = pattern(LIMIT, seed=5)
    response = send_and_read(srv, post("/sha256", body, framing))
    assert response.status == 200, response
    assert json.loads(response.body) == digest(body)
    assert called(calls) == 1


@pytest.mark.parametrize(
    ("limit", "size"),
    # Under 1 MiB the async worker receives the body before the app runs (and never calls
    # it); past 1 MiB it streams while the app reads, and the read fails with 413.
    [(LIMIT, LIMIT + 1), (2 * MIB, 3 * MIB)],
    ids=["received-first", "streamed"],
)
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_chunked_body_over_the_limit_gets_413(server_factory, worker_class, calls, limit, size):
    srv = start(server_factory, worker_class, calls, "--limit-request-body", str(limit))
    response = send_and_read(srv, post("/sha256", pattern(size, seed=6), "chunked"), True)
    assert response.status == 413, response
    if worker_class == "async" and size < BODY_BUFFER:
        assert called(calls) == 0, "the app was called for a refused body"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_no_limit_by_default(server_factory, worker_class, calls):
    srv = start(server_factory, worker_class, calls)
    body = pattern(3 * MIB, seed=7)
    response = send_and_read(srv, post("/sha256", body, "chunked"))
    assert (response.status, json.loads(response.body)) == (200, digest(body))


def test_limit_must_be_a_number(server_factory):
    srv = server_factory.spawn(["--limit-request-body", "lots", APP])
    assert srv.wait_exit() != 0
    assert "--limit-request-body" in srv.stderr


# --- large bodies, and the spool -------------------------------------------------------------


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("server", [*WORKER_CLASSES, "gunicorn"])
def test_large_body_round_trips(server_factory, tmp_path, server, framing, calls):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    body = pattern(8 * MIB, seed=8)
    if server == "gunicorn":
        srv = server_factory(APP, command=gunicorn_command(), worker_class="sync")
    else:
        srv = start(server_factory, server, calls, "--worker-tmp-dir", str(spool_dir))
    response = send_and_read(srv, post("/sha256?how=read-n", body, framing))
    assert (response.status, json.loads(response.body)) == (200, digest(body)), response
    assert list(spool_dir.iterdir()) == []


def spool_fds(pid: int, directory: Path) -> int:
    """The worker's open descriptors on files in ``directory`` (unlinked ones included)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(directory) + "/")
    return count


@pytest.mark.parametrize("how", ["read", "read-n", "readline", "iter"])
def test_bodies_past_the_budget_spill_to_a_file_and_round_trip(server_factory, tmp_path, how):
    """More 1 MiB uploads at once than the budget holds: those past it go to unlinked files
    under --worker-tmp-dir, every one round-trips whatever way the app reads, and no file is
    left after."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    srv = server_factory(APP, "--worker-tmp-dir", str(spool_dir), worker_class="async")
    (worker,) = srv.worker_pids()
    baseline = spool_fds(worker, spool_dir)  # the heartbeat's, if it keeps one
    body = pattern(MIB, seed=9)  # random bytes: a line feed every 256 bytes or so
    over = 6
    clients = []
    for framing, count in (("length", BUDGET_MIB + over - 2), ("chunked", 2)):
        for _ in range(count):
            client = Client(srv.address(), timeout=30)
            raw = post(f"/sha256?how={how}", body, framing)
            split = raw.index(b"\r\n\r\n") + 4 + 100_000
            client.send(raw[:split])
            clients.append((client, raw[split:]))
        if framing == "length":
            wait_for(
                lambda: spool_fds(worker, spool_dir) - baseline >= over - 2,
                10,
                "bodies past the budget in files",
            )
    wait_for(lambda: spool_fds(worker, spool_dir) - baseline >= over, 10, "chunked ones too")
    assert list(spool_dir.iterdir()) == [], "a spool file has a name"
    for client, rest in clients:
        client.send(rest)
    for client, _ in clients:
        response = client.read_response()
        assert (response.status, json.loads(response.body)) == (200, digest(body)), response
        client.close()
    wait_for(lambda: spool_fds(worker, spool_dir) == baseline, 10, "spool files closed")
    assert list(spool_dir.iterdir()) == []


def test_clients_gone_mid_upload_leave_no_spool_file(server_factory, tmp_path, calls):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    srv = start(server_factory, "async", calls, "--worker-tmp-dir", str(spool_dir))
    (worker,) = srv.worker_pids()
    baseline = spool_fds(worker, spool_dir)
    clients = []
    for _ in range(BUDGET_MIB + 4):
        client = Client(srv.address(), timeout=30)
        client.send(build_request("POST", "/sha256", [("Content-Length", str(MIB))]))
        client.send(b"x" * 100_000)
        clients.append(client)
    wait_for(lambda: spool_fds(worker, spool_dir) - baseline >= 4, 10, "spilled bodies")
    for client in clients:
        client.close()
    wait_for(lambda: spool_fds(worker, spool_dir) == baseline, 10, "spool files closed")
    assert list(spool_dir.iterdir()) == []
    assert called(calls) == 0
    body = pattern(MIB, seed=12)
    response = send_and_read(srv, post("/sha256", body))
    assert (response.status, json.loads(response.body)) == (200, digest(body))


def test_regression_concurrent_uploads_hold_bounded_memory(server_factory, tmp_path, calls):
    """Before the spool, each body of up to 1 MiB was held in memory until the app ran, and
    twice over while it arrived in pieces: 256 uploads of 1 MiB grew a worker by 457 MiB.
    Now they share a budget of 32 MiB; the rest wait in files."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    srv = start(server_factory, "async", calls, "--worker-tmp-dir", str(spool_dir))
    (worker,) = srv.worker_pids()
    start_mib = rss_kib(worker) / 1024
    count = 128
    body = pattern(MIB, seed=11)
    clients = []
    for _ in range(count):
        client = Client(srv.address(), timeout=60)
        raw = post("/sha256", body)
        client.send(raw[:-1])  # all but the last byte: every body waits in the worker
        clients.append((client, raw[-1:]))
    wait_for(
        lambda: spool_fds(worker, spool_dir) >= count - BUDGET_MIB, 20, "bodies past the budget"
    )
    held_mib = rss_kib(worker) / 1024
    for client, last in clients:
        client.send(last)
    for client, _ in clients:
        response = client.read_response()
        assert (response.status, json.loads(response.body)) == (200, digest(body))
        client.close()
    peak_mib = int(Path(f"/proc/{worker}/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    line = f"{count} concurrent 1 MiB uploads: worker RSS {start_mib:.0f} -> {held_mib:.0f} MiB"
    print(line, f"(peak {peak_mib:.0f})")
    assert peak_mib - start_mib < GROWTH_LIMIT_MIB, line
    assert called(calls) == count
