"""What ``--metrics-bind`` costs: hello-world throughput with it on against off, same run.

Run on demand, never in ``make test``: ``.venv/bin/python benches/metrics_cost.py``
(``make build`` first). Two ferricorn masters serve ``benches/apps.py``'s hello world on
127.0.0.1, the same flags (``-k async -w 2`` unless ``--worker-class``/``--workers``), one
of them with ``--metrics-bind``. wrk (Debian: ``apt-get install -y wrk``) loads each in
turn, ``--rounds`` times (the order alternates, so that the shared machine's noise falls
on both), ``--duration`` seconds at ``--connections``; the server with metrics on is
scraped once a second during its runs, as Prometheus would. Prints each round's req/s and
the median ratio on/off; the goal is >= 0.97. ``--pin`` puts the servers on CPU 0 and
wrk on CPU 1 (``taskset``), which takes most of the noise out on a 2-core machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
FERRICORN = Path(sys.executable).parent / "ferricorn"
HOST = "127.0.0.1"
GOAL = 0.97


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port} after {deadline:g}s")


def start(args, metrics_port: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [
        *pinned(args, "0"),
        str(FERRICORN),
        "-k",
        args.worker_class,
        "-w",
        str(args.workers),
        "-b",
        f"{HOST}:{port}",
    ]
    if metrics_port:
        cmd += ["--metrics-bind", f"{HOST}:{metrics_port}"]
    cmd.append("apps:hello")
    proc = subprocess.Popen(cmd, cwd=BENCHES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    if metrics_port:
        wait_listening(metrics_port)
    return proc, port


def pinned(args, cpu: str) -> list[str]:
    """``--pin``: servers on CPU 0, wrk on CPU 1, so neither steals the other's core."""
    return ["taskset", "-c", cpu] if args.pin else []


def wrk(port: int, args) -> float:
    cmd = [
        *pinned(args, "1"),
        "wrk",
        "-t1" if args.pin else "-t2",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        f"http://{HOST}:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def scraper(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read()
        except OSError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="async")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, wrk on CPU 1")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benches/metrics_cost.py needs wrk, from Debian: apt-get install -y wrk")
    metrics_port = free_port()
    off, off_port = start(args, None)
    on, on_port = start(args, metrics_port)
    ratios = []
    try:
        for port in (off_port, on_port):  # warm-up
            wrk(port, argparse.Namespace(**{**vars(args), "duration": 1}))
        for round_ in range(args.rounds):
            order = [("off", off_port), ("on", on_port)]
            if round_ % 2:
                order.reverse()
            rps = {}
            for name, port in order:
                stop = threading.Event()
                if name == "on":
                    threading.Thread(target=scraper, args=(metrics_port, stop), daemon=True).start()
                rps[name] = wrk(port, args)
                stop.set()
            ratios.append(rps["on"] / rps["off"])
            print(
                f"round {round_ + 1}: off {rps['off']:.0f} req/s, on {rps['on']:.0f} req/s, "
                f"ratio {ratios[-1]:.3f}"
            )
    finally:
        for proc in (off, on):
            proc.terminate()
            proc.wait(timeout=30)
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(
        f"median ratio on/off: {ratio:.3f} (range {min(ratios):.3f}..{max(ratios):.3f}); "
        f"goal >= {GOAL}: {verdict}"
    )


if __name__ == "__main__":
    main()
