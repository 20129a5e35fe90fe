"""HTTP/2 hello world: ferricorn (WSGI and ASGI) against Granian and gunicorn 27, one run.

Run on demand, never in ``make test``: ``.venv/bin/python benches/h2load.py [--pin]``
(``make build`` first, a full release build for figures to report). Issue 14's target:
with 2 workers, ferricorn ahead of both peers at 100 streams over 10 connections.

Every server gets 2 worker processes (``--workers``) on 127.0.0.1, h2c with prior
knowledge, a hello-world app: ferricorn ``-k async`` (WSGI, ``benches/apps.py:hello``)
and ``-k asgi`` (``benches/asgi_apps.py:app``), Granian ``--interface wsgi`` and
``--interface asgi`` (``--http 2``), gunicorn 27 ``-k gthread`` and ``-k asgi`` (its own
HTTP/2, the ``h2`` package). The client is ``h2load -n N -c 10 -m 100``
(nghttp2-client), the servers loaded in turn, the order rotating each round
(``--rounds``). The table has each server's median requests/s, its CPU per response
(every process of the server, user + system) and the failures h2load counted, then each
ferricorn's ratio per round (median and range) to the peers serving the same interface.
``--pin`` puts the servers on CPU 0 and h2load on CPU 1.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess

from serving import BIN, HOST, Running, ServerFailed, free_port

H2C = ["--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge"]
SERVERS = {
    "ferricorn-wsgi": lambda w, p: [str(BIN / "ferricorn"), "-k", "async", "-w", str(w),
                                    "-b", f"{HOST}:{p}", *H2C, "benches.apps:hello"],
    "ferricorn-asgi": lambda w, p: [str(BIN / "ferricorn"), "-k", "asgi", "-w", str(w),
                                    "-b", f"{HOST}:{p}", *H2C, "benches.asgi_apps:app"],
    "granian-wsgi": lambda w, p: [str(BIN / "granian"), "--interface", "wsgi", "--http", "2",
                                  "--workers", str(w), "--host", HOST, "--port", str(p),
                                  "benches.apps:hello"],
    "granian-asgi": lambda w, p: [str(BIN / "granian"), "--interface", "asgi", "--http", "2",
                                  "--workers", str(w), "--host", HOST, "--port", str(p),
                                  "benches.asgi_apps:app"],
    "gunicorn-wsgi": lambda w, p: [str(BIN / "gunicorn"), "-k", "gthread", "-w", str(w),
                                   "-b", f"{HOST}:{p}", "--no-control-socket", *H2C,
                                   "benches.apps:hello"],
    "gunicorn-asgi": lambda w, p: [str(BIN / "gunicorn"), "-k", "asgi", "-w", str(w),
                                   "-b", f"{HOST}:{p}", "--no-control-socket", *H2C,
                                   "benches.asgi_apps:app"],
}  # fmt: skip


def h2load(port: int, requests: int, pin: bool) -> dict[str, float]:
    cmd = ["taskset", "-c", "1"] if pin else []
    cmd += ["h2load", "-n", str(requests), "-c", "10", "-m", "100", f"http://{HOST}:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not rate or not done:
        raise ServerFailed(f"h2load said: {out[-400:]}")
    ok, failed, errored = map(int, done.groups())
    return {"rps": float(rate.group(1)), "ok": ok, "failed": failed + errored}


def answers_h2(port: int) -> bool:
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
           "--http2-prior-knowledge", f"http://{HOST}:{port}/"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True).stdout == "200"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    keys = args.servers.split(",")
    started, failures = {}, {}
    for key in keys:
        port = free_port()
        argv = (["taskset", "-c", "0"] if args.pin else []) + SERVERS[key](args.workers, port)
        server = Running(argv)
        try:
            server.wait_ready(port, answers_h2)
            started[key] = (server, port)
        except ServerFailed as e:
            failures[key] = str(e)
            server.stop()
    results: dict[str, list[dict]] = {key: [] for key in started}
    try:
        for round_ in range(args.rounds):
            order = (
                list(started)[round_ % max(len(started), 1) :]
                + list(started)[: round_ % max(len(started), 1)]
            )
            for key in order:
                server, port = started[key]
                before = server.cpu_seconds()
                run = h2load(port, args.requests, args.pin)
                run["cpu_us"] = (server.cpu_seconds() - before) / max(run["ok"], 1) * 1e6
                results[key].append(run)
    finally:
        for server, _ in started.values():
            server.stop()
    print(f"h2load -n {args.requests} -c 10 -m 100, {args.workers} workers, "
          f"{args.rounds} rounds{', pinned' if args.pin else ''}")  # fmt: skip
    print("| server | req/s (median) | CPU us/response | failed |")
    print("|---|---|---|---|")
    for key, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        failed = sum(r["failed"] for r in runs)
        print(f"| {key} | {rps:,.0f} | {cpu:.1f} | {failed} |")
    for key, why in failures.items():
        print(f"| {key} | did not start: {why} | | |")
    for interface in ("wsgi", "asgi"):
        ours = f"ferricorn-{interface}"
        peers = [k for k in results if k.endswith(interface) and k != ours]
        for key in peers if ours in results else []:
            pairs = zip(results[ours], results[key], strict=True)
            ratios = [f["rps"] / p["rps"] for f, p in pairs]
            print(f"{ours} / {key}: {statistics.median(ratios):.2f}x req/s "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
