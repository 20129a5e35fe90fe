"""Drop-in, worker family: the worker classes and thread counts gunicorn command lines ask
for (issue 9, items 2 and 10).

Concurrency is seen by the app: ``dropin.app``'s ``/barrier?n=N`` answers ``met`` only when
N requests are inside the app at once, so no test times anything.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import TESTS_DIR, Server, ferricorn_command, gunicorn_command, run_cli

APP = "dropin.app:app"
GUNICORN = gunicorn_command()
FERRICORN = ferricorn_command()
EXIT_USAGE = 2


def serve(command: list[str], args: list[str]) -> Server:
    server = Server(args, command=command, cwd=TESTS_DIR)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def barrier_answers(server: Server, n: int) -> list[str]:
    """``n`` concurrent requests to ``/barrier?n=N``: each answers ``met`` when all were in
    the app at the same time."""
    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(lambda _: server.get(f"/barrier?n={n}", timeout=30), range(n)))
    assert all(r.status == 200 for r in responses), [r.status for r in responses]
    return [r.body.decode() for r in responses]


# Cloud Run's Python quickstart Dockerfile: `exec gunicorn --bind :$PORT --workers 1
# --threads 8 --timeout 0 main:app`, here on port 0; and NetBox's config file (threads = 3).
THREADED = [
    pytest.param(
        ["--bind", "127.0.0.1:0", "--workers", "1", "--threads", "8", "--timeout", "0"],
        8,
        id="cloud-run",
    ),
    pytest.param(["-c", str(TESTS_DIR / "dropin" / "netbox_style.py")], 3, id="netbox-config"),
]


@pytest.mark.parametrize(("args", "threads"), THREADED)
def test_regression_threads_with_the_default_worker_serve_concurrently(args, threads):
    seen = {}
    for name, command in {"ferricorn": FERRICORN, "gunicorn": GUNICORN}.items():
        server = serve(command, [*args, APP])
        try:
            seen[name] = barrier_answers(server, threads)
        finally:
            server.stop()
        if command is FERRICORN:
            assert "Using worker: async" in server.stderr
            assert f"--threads {threads} with the sync worker" in server.stderr
    assert seen["ferricorn"] == seen["gunicorn"] == ["met"] * threads


# Superset's and redash's Dockerfiles: `gunicorn -w 10 -k gevent --worker-connections 1000
# --timeout 120 ...`, here one worker and 12 connections.
@pytest.mark.parametrize("kind", ["gevent", "eventlet"])
def test_regression_gevent_and_eventlet_run_many_blocking_requests_at_once(kind):
    args = ["-b", "127.0.0.1:0", "-w", "1", "-k", kind, "--worker-connections", "12"]
    server = serve(FERRICORN, [*args, "--timeout", "120", APP])
    try:
        assert barrier_answers(server, 12) == ["met"] * 12
    finally:
        server.stop()
    notes = [line for line in server.stderr.splitlines() if f"-k {kind}" in line]
    assert len(notes) == 1, server.stderr
    assert "12 app threads" in notes[0] and "monkey-patched" in notes[0], notes[0]
    assert "[INFO]" in notes[0]


def test_gevent_thread_pool_is_capped():
    out = run_cli("-k", "gevent", "--check-config", APP)
    assert out.returncode == 0, out.stderr
    assert "with 100 app threads" in out.stdout, out.stdout


@pytest.mark.parametrize(
    "worker",
    ["myproject.workers:CustomWorker", "myproject.workers.CustomWorker"],
)
def test_regression_custom_worker_class_lists_what_ferricorn_offers(worker):
    out = run_cli("-k", worker, APP)
    assert out.returncode == EXIT_USAGE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for offered in ("sync", "gthread", "async", "gevent", "eventlet"):
        assert offered in lines[0], lines[0]


@pytest.mark.parametrize(
    "worker", ["uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker"]
)
def test_uvicorn_workers_run_the_asgi_worker_and_say_so(worker):
    out = run_cli("-k", worker, "--check-config", APP)
    assert out.returncode == 0, out.stderr
    assert " asgi worker" in out.stdout, out.stdout
    assert f"-k {worker}: running ferricorn's asgi worker" in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        ("gunicorn.workers.gthread.ThreadWorker", "async"),
        ("egg:gunicorn#sync", "sync"),
        ("gunicorn.workers.ggevent.GeventWorker", "async"),
    ],
)
def test_gunicorn_class_paths_for_its_own_workers_are_accepted(worker, expected):
    out = run_cli("-k", worker, "--check-config", APP)
    assert out.returncode == 0, out.stderr
    assert f" {expected} worker" in out.stdout, out.stdout
