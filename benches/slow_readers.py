"""Slow readers of a big response: how much memory does a worker hold for them?

Run on demand (``make build`` first): ``.venv/bin/python benches/slow_readers.py [options]``.

Starts each server with one worker on ``benches.apps:shared`` (one ``bytes`` of ``--size``
MiB, default 8, made once and returned by every response), then opens ``--clients``
connections (default 100), each with a small receive buffer, sends one GET on each and
reads ``--read-kib`` KiB per client every ``--interval`` seconds for ``--seconds`` seconds:
the clients are far slower than the server. The worker's RSS is sampled throughout; then
the clients close and, after ``--after`` seconds, it is read again.

Prints, per server: RSS before (after one warm-up request), peak while the clients read,
and after they left, in MiB. Servers: ferricorn ``-k async`` (``--threads``), gunicorn
``-k gthread`` (same ``--threads``), and with ``--before PATH`` another ferricorn console
script (an older build) for a before/after figure in the same run.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import time

from serving import BIN, HOST, Running, ServerFailed, arg_parser, free_port, rss_mib

SAMPLE_EVERY = 0.1
RCVBUF = 64 * 1024


def parse_args() -> argparse.Namespace:
    parser = arg_parser(__doc__)
    add = parser.add_argument
    add("--clients", type=int, default=100, help="slow readers, at most 1000 [100]")
    add("--size", type=int, default=8, help="response size in MiB [8]")
    add("--seconds", type=float, default=10.0, help="how long the clients read [10]")
    add("--read-kib", type=int, default=16, help="KiB each client reads per turn [16]")
    add("--interval", type=float, default=0.1, help="seconds between a client's reads [0.1]")
    add("--after", type=float, default=3.0, help="seconds after they leave to read RSS [3]")
    add("--threads", type=int, default=1, help="--threads of both servers [1]")
    add("--before", help="another ferricorn console script to measure too (an older build)")
    add("--only", choices=["ferricorn", "gunicorn", "before"], help="run one server only")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1000:
        parser.error("--clients must be 1..1000")
    return args


def servers(args, port: int) -> list[tuple[str, list[str]]]:
    common = ["-w", "1", "--threads", str(args.threads), "-b", f"{HOST}:{port}"]
    found = [
        ("ferricorn", [str(BIN / "ferricorn"), "-k", "async", *common]),
        ("gunicorn", [str(BIN / "gunicorn"), "-k", "gthread", "--no-control-socket", *common]),
    ]
    if args.before:
        found.append(("before", [args.before, "-k", "async", *common]))
    return [(name, argv) for name, argv in found if args.only in (None, name)]


def open_readers(port: int, args) -> list[socket.socket]:
    request = f"GET /?n={args.size << 20} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    socks = []
    for _ in range(args.clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.connect((HOST, port))
        sock.sendall(request)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def read_slowly(socks: list[socket.socket], pid: int, args) -> tuple[float, int]:
    """Reads ``--read-kib`` per client per turn; returns (peak RSS MiB, bytes read)."""
    peak, total = rss_mib(pid) or 0.0, 0
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    want = args.read_kib * 1024
    end = time.monotonic() + args.seconds
    next_turn = next_sample = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_turn:
            next_turn = now + args.interval
            for key, _ in selector.select(0):
                try:
                    total += len(key.fileobj.recv(want))
                except (BlockingIOError, ConnectionError):
                    pass
        if now >= next_sample:
            next_sample = now + SAMPLE_EVERY
            peak = max(peak, rss_mib(pid) or 0.0)
        time.sleep(0.01)  # pacing: the clients are meant to be slow
    selector.close()
    return peak, total


def measure(name: str, argv: list[str], port: int, args) -> dict[str, float]:
    with Running([*argv, "benches.apps:shared"]) as server:
        server.wait_ready(port)
        pids = server.workers()
        if len(pids) != 1:
            raise ServerFailed(f"expected 1 worker, found {pids}")
        pid = pids[0]
        before = rss_mib(pid)
        socks = open_readers(port, args)
        peak, total = read_slowly(socks, pid, args)
        for sock in socks:
            sock.close()
        time.sleep(args.after)  # pacing: the time the worker gets to give memory back
        server.check_alive()
        after = rss_mib(pid)
    return {"before": before, "peak": peak, "after": after, "read_mib": total / (1 << 20)}


def main() -> None:
    args = parse_args()
    print(
        f"{args.clients} slow readers of one shared {args.size} MiB bytes, one worker,"
        f" --threads {args.threads}; {args.read_kib} KiB per client every {args.interval:g}s"
        f" for {args.seconds:g}s"
    )
    print(f"{'server':<10} {'before':>8} {'peak':>8} {'after':>8} {'read':>9}   (MiB)")
    failed = False
    for name, argv in servers(args, 0):
        port = free_port()
        argv = [a if not a.startswith(f"{HOST}:") else f"{HOST}:{port}" for a in argv]
        try:
            r = measure(name, argv, port, args)
        except ServerFailed as e:
            print(f"{name:<10} failed: {e}")
            failed = True
            continue
        print(
            f"{name:<10} {r['before']:>8.1f} {r['peak']:>8.1f} {r['after']:>8.1f}"
            f" {r['read_mib']:>9.1f}",
            flush=True,
        )
    sys.exit(2 if failed else 0)


if __name__ == "__main__":
    main()
