"""Requests/s and CPU per request of the HTTP/2 engine prototypes, one run, h2load.

``python benches/h2_engine/measure.py [--granian] [--tls] [--n 200000] [--c 10] [--m 100]``:
builds this crate, then for each server (``h2_mio``: the ``h2`` crate with its waker,
``H2_NOOP_WAKER=1`` for a no-op one; ``sans_mio``: the sans-io ``shiguredo_http2``;
with ``--granian``, Granian 2's HTTP/2 serving ``benches/asgi_apps.py:app`` as a
reference that includes a Python app;
with ``--tls``, ``h2_mio`` over TLS with ALPN h2 on the repository's test certificate)
starts it on a free port of 127.0.0.1, waits for it to answer, runs ``h2load -n N -c C
-m M`` (h2c prior knowledge, or https) and reads the server's CPU time (user + system, the process
and its children) from /proc around the load. Prints one JSON line per server.

The prototypes are single-threaded; Granian runs one worker with a single-threaded
runtime (``--runtime-mode st``) so the rows are comparable on a 2-core machine.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, deadline=30.0):
    """Polls until the port accepts a connection, or fails after the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server on {port} not ready after {deadline}s")


def cpu_seconds(pid):
    """User + system CPU of a process and its live descendants, in seconds."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        todo.extend(children.get(p, []))
    return total / TICK


def h2load(port, args, scheme="http"):
    """Runs h2load and returns (requests done, succeeded, seconds, req/s)."""
    cmd = [
        "h2load",
        "-n",
        str(args.n),
        "-c",
        str(args.c),
        "-m",
        str(args.m),
        f"{scheme}://127.0.0.1:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    done = re.search(r"(\d+) done, (\d+) succeeded", out)
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    return int(done.group(1)), int(done.group(2)), secs, float(fin.group(3))


def servers(args):
    """(name, argv template) for each server under test; {port} is filled in."""
    release = HERE / "target" / "release"
    rows = [
        ("h2_mio", [str(release / "h2_mio"), "{port}"]),
        ("sans_mio", [str(release / "sans_mio"), "{port}"]),
    ]
    if args.tls:
        certs = ROOT / "src" / "tls" / "testdata"
        tls = ["--tls", str(certs / "cert.pem"), str(certs / "key.pem")]
        rows.append(("h2_mio_tls", [str(release / "h2_mio"), "{port}", *tls]))
    if args.granian:
        granian = str(ROOT / ".venv" / "bin" / "granian")
        rows.append(
            (
                "granian_asgi",
                [
                    granian,
                    "--interface",
                    "asgi",
                    "--http",
                    "2",
                    "--workers",
                    "1",
                    "--runtime-mode",
                    "st",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--log-level",
                    "warning",
                    "asgi_apps:app",
                ],
            )
        )
    return rows


def run(name, argv, args):
    """One server: start, warm up, load, stop; returns its result row."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(argv, cwd=ROOT / "benches", stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        warm = argparse.Namespace(n=2000, c=args.c, m=args.m)
        scheme = "https" if name.endswith("_tls") else "http"
        h2load(port, warm, scheme)
        before = cpu_seconds(proc.pid)
        done, ok, secs, rps = h2load(port, args, scheme)
        cpu = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {
        "server": name,
        "requests": done,
        "succeeded": ok,
        "seconds": round(secs, 3),
        "req_per_s": round(rps),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_req": round(cpu / max(ok, 1) * 1e6, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--c", type=int, default=10)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--granian", action="store_true")
    parser.add_argument("--tls", action="store_true", help="add h2_mio over TLS (ALPN h2)")
    args = parser.parse_args()
    env = dict(os.environ, CARGO_TARGET_DIR=str(HERE / "target"))
    subprocess.run(["cargo", "build", "--release", "-j2", "-q"], cwd=HERE, env=env, check=True)
    for name, argv in servers(args):
        print(json.dumps(run(name, argv, args)), flush=True)


if __name__ == "__main__":
    main()
