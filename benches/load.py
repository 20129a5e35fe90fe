"""End-to-end load benchmark: ferricorn and its peers, same app, same client, one run.

Run on demand (not in ``make test``): ``make load`` or ``.venv/bin/python benches/load.py``.
Needs ``wrk`` (Debian: ``apt-get install wrk``); gunicorn is pip-installed into the
running interpreter's environment when missing. Every server runs the same number of
workers on ``examples/hello.py``; rounds alternate between servers so that noise from
the shared machine spreads over all of them. Prints one table with each server's ratio
to the first one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers(workers: int, port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    return {
        "ferricorn sync": [str(BIN / "ferricorn"), "-w", str(workers), "-b", bind],
        "gunicorn sync": [str(BIN / "gunicorn"), "-w", str(workers), "-b", bind],
    }


def wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(16)[8:12] == b" 200":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} not ready")


def parse_wrk(text: str) -> dict[str, float]:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)", text, re.M)
        out[f"p{pct}"] = seconds(*m.groups()) if m else float("nan")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    out["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return out


def run_round(cmd: list[str], port: int, args) -> dict[str, float]:
    proc = subprocess.Popen(
        [*cmd, "examples.hello:app"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(port, time.monotonic() + 20)
        wrk = [
            "wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
            "-H", "Connection: close", f"http://127.0.0.1:{port}/",
        ]  # fmt: skip
        text = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
        return parse_wrk(text)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if not (BIN / "gunicorn").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "gunicorn"], check=True)
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        port = free_port()
        for name, cmd in servers(args.workers, port).items():
            results.setdefault(name, []).append(run_round(cmd, port, args))
    print(
        f"\nhello world, {args.workers} workers, wrk -c{args.connections} "
        f"non-keep-alive, {args.rounds} x {args.duration}s, {os.cpu_count()} cores"
    )
    print(f"{'server':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}")
    base = None
    for name, rounds in results.items():
        rps = statistics.median(r["rps"] for r in rounds)
        p50 = statistics.median(r["p50"] for r in rounds) * 1e3
        p99 = statistics.median(r["p99"] for r in rounds) * 1e3
        errors = sum(r["socket_errors"] + r["non2xx"] for r in rounds)
        base = base or rps
        print(f"{name:<16} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7} {rps / base:>6.2f}")


if __name__ == "__main__":
    main()
