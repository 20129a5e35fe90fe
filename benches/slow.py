"""Slowloris check: does one ferricorn async worker still serve while clients trickle headers?

Run on demand (``make build`` first): ``.venv/bin/python benches/slow.py [options]``.
Needs ``slowhttptest`` (Debian: ``apt-get install -y slowhttptest``).

Starts ``ferricorn -k async -w 1`` on ``benches.apps:hello`` (127.0.0.1, a free port) and
runs ``slowhttptest -H`` (slowloris: connections that send an endless request head, a
header line every ``--interval`` seconds) with ``--connections`` connections (default 400,
opened at ``--rate`` per second) for ``--duration`` seconds (default 45). Meanwhile it sends
one normal ``GET /`` per second on a fresh connection, each allowed ``PROBE_TIMEOUT``.

Prints slowhttptest's settings and final status, the connection counts from its CSV
(most connected at once, closed by the server, errors), and the normal requests' outcome.
Exits 0 when every normal request got a 200, 1 when one did not, 2 when it could not run.
``--worker-class sync`` shows the contrast: a sync worker is tied up by the first slow
client.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving import BIN, HOST, Running, ServerFailed, arg_parser, free_port

PROBE_TIMEOUT = 3.0
PROBE_INTERVAL = 1.0
SLOW_GRACE = 60  # slowhttptest's own shutdown, past --duration, before it is killed
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMESTAMP = re.compile(r"^\w{3} \w{3} +\d+ [\d:]+ \d{4}:$")


def parse_args() -> argparse.Namespace:
    parser = arg_parser(__doc__)
    add = parser.add_argument
    add("--connections", type=int, default=400, help="slow connections, at most 1000 [400]")
    add("--duration", type=int, default=45, help="seconds, at most 120 [45]")
    add("--rate", type=int, default=100, help="slow connections opened per second [100]")
    add("--interval", type=int, default=10, help="seconds between header lines [10]")
    add("--worker-class", default="async", help="ferricorn -k [async]")
    args = parser.parse_args()
    if not (1 <= args.connections <= 1000 and 5 <= args.duration <= 120):
        parser.error("--connections must be 1..1000 and --duration 5..120")
    if args.rate < 1 or args.interval < 1:
        parser.error("--rate and --interval must be positive")
    return args


def slowhttptest(port: int, prefix: Path, args) -> list[str]:
    return [
        "slowhttptest", "-H", "-c", str(args.connections), "-r", str(args.rate),
        "-i", str(args.interval), "-l", str(args.duration), "-t", "GET",
        "-u", f"http://{HOST}:{port}/", "-x", "24", "-p", str(int(PROBE_TIMEOUT)),
        "-g", "-o", str(prefix),
    ]  # fmt: skip


def probe(port: int) -> tuple[int | None, float]:
    """One normal request on a fresh connection: (status or None, seconds)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - started
    finally:
        conn.close()


def probe_while(attack: subprocess.Popen, port: int, server: Running) -> list:
    """Probes once per ``PROBE_INTERVAL`` until slowhttptest exits: [(t, status, seconds)]."""
    started = time.monotonic()
    results = []
    while attack.poll() is None:
        server.check_alive()
        status, took = probe(port)
        results.append((time.monotonic() - started, status, took))
        time.sleep(max(0.0, PROBE_INTERVAL - took))
    return results


def summary(output: str) -> list[str]:
    """slowhttptest's settings and its last status block, without the colours."""
    text = ANSI.sub("", output)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Drop the timestamps and the report paths (a temporary directory, gone after the run).
    lines = [line for line in lines if "report saved" not in line and not TIMESTAMP.match(line)]
    settings = [line for line in lines if ":" in line and "  " in line and "status" not in line]
    last = max(
        (i for i, line in enumerate(lines) if line.startswith("slow HTTP test status")), default=0
    )
    return list(dict.fromkeys(settings[:11])) + lines[last:]


def csv_counts(path: Path) -> str:
    """Most connections held at once and the closed/error counts, from the -g CSV."""
    try:
        rows = list(csv.DictReader(path.open()))
    except OSError:
        return "no CSV report"
    if not rows:
        return "empty CSV report"
    connected = max(int(row["Connected"]) for row in rows)
    closed = int(rows[-1]["Closed"])
    unavailable = sum(1 for row in rows if int(row["Service Available"]) == 0)
    return (
        f"slow connections held at most {connected} at once; closed by the server: {closed}; "
        f"seconds slowhttptest's own probe found the service unavailable: {unavailable}"
    )


def run(args) -> int:
    port = free_port()
    argv = [str(BIN / "ferricorn"), "-k", args.worker_class, "-w", "1", "-b", f"{HOST}:{port}"]
    with tempfile.TemporaryDirectory() as tmp, Running([*argv, "benches.apps:hello"]) as server:
        server.wait_ready(port)
        prefix = Path(tmp) / "slow"
        print(f"ferricorn -k {args.worker_class} -w 1 on {HOST}:{port}; slowhttptest -H ...")
        out = tempfile.TemporaryFile("w+")
        attack = subprocess.Popen(slowhttptest(port, prefix, args), stdout=out, stderr=out)
        try:
            probes = probe_while(attack, port, server)
            attack.wait(timeout=args.duration + SLOW_GRACE)
        finally:
            if attack.poll() is None:
                attack.kill()
                attack.wait()
        out.seek(0)
        print("\n".join(summary(out.read())))
        print(csv_counts(prefix.with_suffix(".csv")))
    return report(probes)


def report(probes: list) -> int:
    ok = [p for p in probes if p[1] == 200]
    failed = [p for p in probes if p[1] != 200]
    slowest = max((p[2] for p in probes), default=float("nan"))
    print(
        f"normal requests during the run: {len(probes)}, got 200: {len(ok)}, "
        f"slowest {slowest * 1e3:.1f} ms"
    )
    for t, status, took in failed[:5]:
        print(f"  at {t:5.1f}s: {status or 'no answer'} after {took:.2f}s")
    if failed or not probes:
        print("FAIL: a normal request did not get 200 during the slowloris run")
        return 1
    print("OK: every normal request got 200 during the slowloris run")
    return 0


def main() -> None:
    args = parse_args()
    if not shutil.which("slowhttptest"):
        sys.exit("benches/slow.py needs slowhttptest: apt-get install -y slowhttptest")
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
