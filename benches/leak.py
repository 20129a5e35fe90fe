"""Leak check: one ferricorn async worker's RSS before and after a million requests.

Run on demand (``make build`` first): ``.venv/bin/python benches/leak.py [options]``.

Starts ``ferricorn -k async -w 1`` on ``benches.apps:hello`` (127.0.0.1, a free port),
warms it up with 10,000 requests, reads the worker's RSS from /proc, drives 1,000,000 more
requests with wrk (``-t2``, 50 keep-alive connections), reads the RSS again and prints both
and the growth. Exits 1 when the growth reaches 5 MiB, when any request failed (non-2xx or
socket error), or when the worker was replaced during the run; 2 when it could not run.

How the request count is bounded: wrk has no fixed-count mode, so it runs with
``benches/count.lua``, which stops each wrk thread after its share of the requests still to
send, in chunks of at most 3 s (wrk waits out ``-d`` even when its threads have stopped, so
a chunk's length is sized from the rate measured so far, with a second to spare). The
``N requests in`` of each chunk are added up: the total lands on the target within a few
requests. RSS is read after every chunk, which shows the trend rather than two points.
Every chunk opens new connections, so connection set-up and teardown are exercised too.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import subprocess
import sys
import time

from serving import (
    BENCHES,
    BIN,
    HOST,
    Running,
    ServerFailed,
    arg_parser,
    free_port,
    parse_wrk,
    rss_mib,
)

WRK_THREADS = 2
FIRST_CHUNK_SECONDS = 2
MAX_CHUNK_SECONDS = 3
# A run that has not reached its request count by then has failed (a stuck or slow server).
MAX_SECONDS = 900
WRK_GRACE = 30


def parse_args() -> argparse.Namespace:
    parser = arg_parser(__doc__)
    add = parser.add_argument
    add("--requests", type=int, default=1_000_000, help="requests measured [1000000]")
    add("--warmup", type=int, default=10_000, help="requests before the first RSS [10000]")
    add("--connections", type=int, default=50, help="wrk -c [50]")
    add("--limit-mib", type=float, default=5.0, help="growth that fails the check [5]")
    add("--worker-class", default="async", help="ferricorn -k [async]")
    add("--no-keepalive", dest="keepalive", action="store_false", help="Connection: close")
    args = parser.parse_args()
    if args.requests < 1 or args.warmup < 0 or args.connections < 2:
        parser.error("--requests must be positive and --connections at least 2")
    return args


def wrk_chunk(port: int, seconds: int, requests: int, args) -> dict[str, float]:
    """At most ``seconds`` of wrk, stopping after about ``requests`` responses."""
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{args.connections}", f"-d{seconds}s"]
    cmd += ["-s", str(BENCHES / "count.lua")]
    if not args.keepalive:
        cmd += ["-H", "Connection: close"]
    cmd += [f"http://{HOST}:{port}/", "--", str(math.ceil(requests / WRK_THREADS))]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + WRK_GRACE)
    except subprocess.TimeoutExpired:
        raise ServerFailed(f"wrk did not finish {seconds}s of load in time") from None
    if done.returncode != 0:
        raise ServerFailed(f"wrk exited with {done.returncode}: {done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


class Worker:
    """The single worker: its pid must not change, or the RSS figures compare two processes."""

    def __init__(self, server: Running):
        self.server = server
        pids = server.workers()
        if len(pids) != 1:
            raise ServerFailed(f"expected 1 worker, found {pids}")
        self.pid = pids[0]

    def rss_mib(self) -> float:
        self.server.check_alive()
        if self.server.workers() != [self.pid]:
            raise ServerFailed(f"worker {self.pid} was replaced: {self.server.log_tail()}")
        rss = rss_mib(self.pid)
        if rss is None:
            raise ServerFailed(f"worker {self.pid} is gone")
        return rss


def drive(port: int, target: int, worker: Worker, args, verbose: bool) -> tuple[int, int]:
    """Runs wrk in chunks until ``target`` requests are done; returns (requests, errors)."""
    done = errors = 0
    seconds, rate = FIRST_CHUNK_SECONDS, 0.0
    deadline = time.monotonic() + MAX_SECONDS
    while done < target:
        if time.monotonic() > deadline:
            raise ServerFailed(f"only {done:,} of {target:,} requests after {MAX_SECONDS}s")
        result = wrk_chunk(port, seconds, target - done, args)
        done += int(result["requests"])
        errors += int(result["errors"])
        if verbose:
            print(
                f"  {int(result['requests']):>9,} requests in {seconds:>2}s, {done:>10,} in all,"
                f" errors {errors}, RSS {worker.rss_mib():.2f} MiB",
                flush=True,
            )
        # A chunk that stopped early under-reports the rate: keep the best one seen.
        rate = max(rate, result["rps"], 1.0)
        seconds = min(MAX_CHUNK_SECONDS, math.ceil((target - done) / rate) + 1)
    return done, errors


def run(args) -> int:
    port = free_port()
    argv = [str(BIN / "ferricorn"), "-k", args.worker_class, "-w", "1", "-b", f"{HOST}:{port}"]
    with Running([*argv, "benches.apps:hello"]) as server:
        server.wait_ready(port)
        worker = Worker(server)
        keepalive = "keep-alive" if args.keepalive else "Connection: close"
        print(f"ferricorn -k {args.worker_class} -w 1, benches.apps:hello, worker pid {worker.pid}")
        print(f"wrk -t2 -c{args.connections}, {keepalive}")
        warm, warm_errors = drive(port, args.warmup, worker, args, verbose=False)
        before = worker.rss_mib()
        print(f"warm-up: {warm:,} requests, errors {warm_errors}; RSS {before:.2f} MiB")
        started = time.monotonic()
        done, errors = drive(port, args.requests, worker, args, verbose=True)
        after = worker.rss_mib()
        elapsed = time.monotonic() - started
    growth = after - before
    print(f"requests: {done:,} in {elapsed:.1f}s ({done / elapsed:,.0f}/s), errors {errors}")
    print(f"RSS before {before:.2f} MiB, after {after:.2f} MiB, growth {growth:+.2f} MiB")
    failed = []
    if growth >= args.limit_mib:
        failed.append(f"growth {growth:.2f} MiB >= {args.limit_mib:g} MiB")
    if errors or warm_errors:
        failed.append(f"{errors + warm_errors} failed requests")
    print("FAIL: " + "; ".join(failed) if failed else f"OK: growth < {args.limit_mib:g} MiB")
    return 1 if failed else 0


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("benches/leak.py needs wrk, from Debian: apt-get install -y wrk")
    if not (BIN / "ferricorn").exists():
        sys.exit(f"{BIN / 'ferricorn'} is missing: run `make build`")
    # A TERM to the script unwinds through `with Running`, which stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(run(args))
    except ServerFailed as e:
        print(f"could not run: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
