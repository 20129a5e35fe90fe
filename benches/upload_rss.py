"""Upload memory: the peak RSS of one worker while 256 clients each POST 1 MiB at once.

Run on demand (``make build`` first): ``.venv/bin/python benches/upload_rss.py [options]``.

For each server (``--servers``, default ferricorn-async, ferricorn-sync, granian,
gunicorn-gthread; ``--workers`` processes each, default 1) and each app (``read``: reads the
whole body and answers its length; ``ignore``: answers without reading it), it starts the
server on 127.0.0.1 (a free port), warms it up, then runs ``--rounds`` bursts (default 3): open
``--clients`` connections (default 256), then send each one request head and a body of
``--size`` bytes (default 1 MiB) at once, and read every response. Meanwhile a thread samples
the workers' ``VmRSS`` in /proc every 5 ms; at the end each worker's ``VmHWM`` is read too.
The table gives, per worker (the largest worker), the RSS before the bursts and the peak
(the larger of the sampled VmRSS and VmHWM), and the growth between them.

Every client's request must be answered 200 with the right length, else the server's row
says how many failed. Servers missing from .venv are skipped; gunicorn and granian are
installed from ``requirements-bench.txt``. Exits 2 when no server could run.

The apps are this module's ``read`` and ``ignore`` (loaded as ``benches.upload_rss:NAME``),
so importing it has no side effects beyond defining them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from pathlib import Path

MIB = 1024 * 1024
READ_CHUNK = 64 * 1024


def read(environ, start_response):
    """Reads the whole body in 64 KiB pieces and answers how many bytes came."""
    stream = environ["wsgi.input"]
    total = 0
    while chunk := stream.read(READ_CHUNK):
        total += len(chunk)
    body = str(total).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def ignore(environ, start_response):
    """Answers without reading the body: what the server holds of a body nobody reads."""
    body = environ.get("CONTENT_LENGTH", "0").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="ferricorn-async,ferricorn-sync,granian,gunicorn-gthread")
    p.add_argument("--apps", default="read,ignore")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--size", type=int, default=MIB)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--extra", default="", help="extra flags for ferricorn, space-separated")
    return p.parse_args()


def status_kib(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


class Sampler(threading.Thread):
    """Samples each worker's VmRSS until stopped; keeps the peak per pid."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], status_kib(pid, "VmRSS") or 0)
            time.sleep(0.005)

    def stop(self) -> dict[int, int]:
        self.done.set()
        self.join()
        for pid in self.pids:
            self.peak[pid] = max(self.peak[pid], status_kib(pid, "VmHWM") or 0)
        return self.peak


async def one_upload(port: int, head: bytes, body: bytes, go: asyncio.Event) -> bool:
    from serving import HOST

    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    try:
        await go.wait()
        writer.write(head)
        writer.write(body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=120)
        return response.startswith(b"HTTP/1.1 200") and response.endswith(str(len(body)).encode())
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


async def burst(port: int, clients: int, size: int) -> int:
    """One burst; returns how many uploads failed."""
    body = b"u" * size
    head = (
        f"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    go = asyncio.Event()
    tasks = [asyncio.create_task(one_upload(port, head, body, go)) for _ in range(clients)]
    await asyncio.sleep(0.2)  # every connection open (or failed) before the bodies go
    go.set()
    results = await asyncio.gather(*tasks)
    return results.count(False)


def measure(server, app: str, args: argparse.Namespace) -> dict:
    from serving import BIN, Running, free_port

    port = free_port()
    flags = server.flags(args.workers, port, None)
    if server.executable == "ferricorn":
        flags += args.extra.split()
    argv = [str(BIN / server.executable), *flags, f"benches.upload_rss:{app}"]
    with Running(argv) as running:
        running.wait_ready(port)
        asyncio.run(burst(port, 8, args.size))  # warm-up: every worker has served uploads
        time.sleep(0.5)
        pids = running.workers() or [running.proc.pid]
        before = max(status_kib(pid, "VmRSS") or 0 for pid in pids)
        sampler = Sampler(pids)
        sampler.start()
        failed = sum(asyncio.run(burst(port, args.clients, args.size)) for _ in range(args.rounds))
        peak = max(sampler.stop().values())
        running.check_alive()
    return {"before": before / 1024, "peak": peak / 1024, "failed": failed}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from load import SERVERS, ensure_installed

    args = parse_args()
    keys = [k for k in args.servers.split(",") if k]
    for key, why in ensure_installed(keys).items():
        print(f"{SERVERS[key].name}: skipped: {why}", file=sys.stderr)
        keys.remove(key)
    rows = []
    for key in keys:
        server = SERVERS[key]
        for app in args.apps.split(","):
            try:
                result = measure(server, app, args)
            except Exception as e:  # noqa: BLE001 - a server that fails is reported, not fatal
                print(f"{server.name} ({app}): skipped: {e}", file=sys.stderr)
                continue
            rows.append((server.name, app, result))
            print(f"{server.name} ({app}): {result}", file=sys.stderr)
    if not rows:
        return 2
    print(
        f"\n{args.clients} clients x {args.size // 1024} KiB POST, {args.rounds} bursts,"
        f" --workers {args.workers}; RSS of the largest worker, MiB\n"
    )
    print("| server | app | before | peak | growth | failed |")
    print("|---|---|---:|---:|---:|---:|")
    for name, app, r in rows:
        before, peak, failed = r["before"], r["peak"], r["failed"]
        print(f"| {name} | {app} | {before:.0f} | {peak:.0f} | {peak - before:.0f} | {failed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
