"""Server-Sent Events: how soon does each event reach its client?

Run on demand (``make build`` first): ``.venv/bin/python benches/sse.py [options]``.

Serves ``tests/frameworks/sse_app.py`` (Flask, ``stream_with_context``): each client's
``GET /events`` gets ``--events`` events (default 50), one every ``--interval`` seconds
(default 0.1), each carrying the app's ``time.time()`` when it yielded it. ``--clients``
clients (default 20) connect at the same moment, one worker per server. For each server,
in the same run: the time from sending the request to the first event (median and max
over the clients), and each event's delay, the client's receive time minus the app's
yield time (median, p99, max over every event), with how many events and clients got
through before ``--deadline`` seconds per client.

Servers: ferricorn ``-k async --threads 1`` (the app runs on the loop thread, so one
sleeping generator holds every other stream back), ferricorn ``-k gthread --threads 8``
and ``--threads CLIENTS``, gunicorn ``-k gthread --threads CLIENTS``; ``--sync`` adds the
``sync`` workers of both (one stream at a time). ``--write`` sends the same events from a
plain WSGI app through the ``write()`` callable instead. Exits 0 when ferricorn gthread with
``--threads CLIENTS`` meets the issue 9 target (median time to first event <= gunicorn's,
every event within 50 ms of its yield), 1 when it does not, 2 when a server failed.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time

from serving import BIN, HOST, ROOT, Running, ServerFailed, arg_parser, free_port

APP = "sse_app:app"
APP_DIR = ROOT / "tests" / "frameworks"
TARGET_DELAY = 0.050


def parse_args() -> argparse.Namespace:
    parser = arg_parser(__doc__)
    add = parser.add_argument
    add("--clients", type=int, default=20, help="concurrent SSE clients, 1..200 [20]")
    add("--events", type=int, default=50, help="events per client [50]")
    add("--interval", type=float, default=0.1, help="seconds between events [0.1]")
    add("--deadline", type=float, default=20.0, help="seconds each client reads at most [20]")
    add("--sync", action="store_true", help="also the sync workers (one stream at a time)")
    add("--write", action="store_true", help="events sent with write(), not yielded")
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or args.events < 1 or args.interval < 0:
        parser.error("--clients must be 1..200, --events positive, --interval >= 0")
    return args


def servers(args) -> list[tuple[str, list[str]]]:
    """(label, argv) for each server, all on one worker and a free port set later."""
    n = str(args.clients)
    ferricorn = [str(BIN / "ferricorn"), "--workers", "1", "--chdir", str(APP_DIR)]
    gunicorn = [str(BIN / "gunicorn"), "--workers", "1", "--chdir", str(APP_DIR)]
    chosen = [
        ("ferricorn async --threads 1", [*ferricorn, "-k", "async", "--threads", "1"]),
        ("ferricorn gthread --threads 8", [*ferricorn, "-k", "gthread", "--threads", "8"]),
        (f"ferricorn gthread --threads {n}", [*ferricorn, "-k", "gthread", "--threads", n]),
        (f"gunicorn gthread --threads {n}", [*gunicorn, "-k", "gthread", "--threads", n]),
    ]
    if args.sync:
        chosen += [("ferricorn sync", [*ferricorn, "-k", "sync"])]
        chosen += [("gunicorn sync", [*gunicorn, "-k", "sync"])]
    return chosen


def client(port: int, args, start: threading.Barrier, result: dict) -> None:
    """One SSE stream: when its request went, and (index, yielded, received) per event."""
    request = (
        f"GET /events?n={args.events}&interval={args.interval} HTTP/1.1\r\n"
        "Host: bench\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()
    events: list[tuple[int, float, float]] = []
    result["events"] = events
    try:
        sock = socket.create_connection((HOST, port), timeout=5.0)
    except OSError as exc:
        result["error"] = str(exc)
        return
    with sock:
        start.wait()
        end = time.time() + args.deadline
        result["sent"] = time.time()
        sock.sendall(request)
        buf = b""
        while len(events) < args.events:
            left = end - time.time()
            if left <= 0:
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except (TimeoutError, OSError):
                return
            now = time.time()
            if not data:
                return
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        index, stamp = line[6:].split()
                        events.append((int(index), float(stamp), now))


def measure(argv: list[str], args) -> dict:
    port = free_port()
    app = "sse_app:written" if args.write else APP
    with Running([*argv, "--bind", f"{HOST}:{port}", app]) as server:
        server.wait_ready(port)
        results = [{} for _ in range(args.clients)]
        start = threading.Barrier(args.clients)
        threads = [
            threading.Thread(target=client, args=(port, args, start, r), daemon=True)
            for r in results
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.deadline + 10)
    firsts = [r["events"][0][2] - r["sent"] for r in results if r.get("events")]
    delays = sorted(recv - yielded for r in results for _, yielded, recv in r.get("events", []))
    complete = sum(len(r.get("events", [])) == args.events for r in results)
    return {
        "clients": len(firsts),
        "complete": complete,
        "events": len(delays),
        "first_p50": statistics.median(firsts) if firsts else None,
        "first_max": max(firsts) if firsts else None,
        "delay_p50": statistics.median(delays) if delays else None,
        "delay_p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
        "delay_max": delays[-1] if delays else None,
    }


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def main() -> int:
    args = parse_args()
    how = "write()" if args.write else "a Flask generator"
    print(
        f"{args.clients} clients x {args.events} events every {args.interval:g} s from {how}, "
        f"one worker; each client reads for at most {args.deadline:g} s; times in ms"
    )
    print(
        "| server | clients with an event | complete | events | first p50 | first max "
        "| delay p50 | delay p99 | delay max |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    figures = {}
    for label, argv in servers(args):
        try:
            f = measure(argv, args)
        except ServerFailed as exc:
            print(f"{label}: {exc}", file=sys.stderr)
            return 2
        figures[label] = f
        print(
            f"| {label} | {f['clients']} | {f['complete']} | {f['events']} "
            f"| {ms(f['first_p50'])} | {ms(f['first_max'])} | {ms(f['delay_p50'])} "
            f"| {ms(f['delay_p99'])} | {ms(f['delay_max'])} |",
            flush=True,
        )
    ours = figures[f"ferricorn gthread --threads {args.clients}"]
    theirs = figures[f"gunicorn gthread --threads {args.clients}"]
    met = (
        ours["complete"] == args.clients
        and ours["first_p50"] <= theirs["first_p50"]
        and ours["delay_max"] <= TARGET_DELAY
    )
    print(
        f"target (first p50 <= gunicorn's, every event within 50 ms): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
