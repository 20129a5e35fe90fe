"""What the benchmark scripts share: start a server, find its workers, stop it, read wrk.

- ``Running`` starts a server in its own session and, on the way out of its ``with`` block,
  stops the whole process group (TERM, then KILL after ``STOP_TIMEOUT``): no server outlives
  a benchmark, and nothing is ever killed by name.
- ``children`` and ``rss_mib`` read /proc: a preforking master's direct children are its
  workers.
- ``Running.cpu_seconds`` sums the CPU time of the server's processes, also from /proc.
- ``parse_wrk`` turns wrk's report into numbers; ``median`` skips what was not measured.
- ``arg_parser`` is every script's parser (its doc's first line, the rest as written);
  ``help_text`` reads a server's ``--help``, to see what the installed version has.

Everything binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
# Servers are the console scripts next to the running interpreter: .venv's, after `make build`.
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(Exception):
    """The server did not start, died, or answered wrongly: the caller reports and skips it."""


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first line as the description."""
    return argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )


def help_text(executable: str) -> str:
    """What ``BIN/executable --help`` prints; "" when it does not run."""
    try:
        done = subprocess.run(
            [str(BIN / executable), "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # nan: not measured
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgrp) of every process, from /proc/PID/stat."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may hold spaces: split after the last one.
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        yield int(entry), state, int(ppid), int(pgrp)


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies left for a reaper do not count."""
    return any(pgrp == pgid and state != "Z" for _, state, _, pgrp in processes())


def children(pid: int) -> list[int]:
    """Live direct children of ``pid``: the workers of a preforking master."""
    return sorted(p for p, state, ppid, _ in processes() if ppid == pid and state != "Z")


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def answers(port: int) -> bool:
    """Whether a plain GET gets a 200 (any body): the server is up and the app loaded."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(16)[8:12] == b" 200"
    except OSError:
        return False


class Running:
    """A server started in its own session, so that stopping it reaches every worker.

    The server's output goes to a temporary file, whose tail explains a failure to start
    (``BENCH_VERBOSE=1`` shows it live instead).
    """

    def __init__(self, argv: list[str]):
        self.log = tempfile.TemporaryFile()
        verbose = bool(os.environ.get("BENCH_VERBOSE"))
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=None if verbose else self.log,
            stderr=None if verbose else subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 6) -> str:
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def wait_ready(self, port: int, probe: Callable[[int], bool] = answers) -> None:
        """Polls until ``probe`` (by default: a plain GET gets a 200) says the server is up;
        fails early if it exits."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited with {self.proc.returncode}: {self.log_tail()}")
            if probe(port):
                return
            time.sleep(0.05)
        raise ServerFailed(f"not answering after {START_TIMEOUT:g}s: {self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ServerFailed(f"server exited during the run: {self.log_tail()}")

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def worker_rss_mib(self) -> float:
        """Mean RSS of the workers; the master's own for a server that runs in one process."""
        pids = self.workers() or [self.proc.pid]
        values = [v for v in map(rss_mib, pids) if v is not None]
        return statistics.mean(values) if values else float("nan")

    def cpu_seconds(self) -> float:
        """User and system time used so far by every live process of the server's group."""
        total = 0
        for pid, state, _, pgrp in processes():
            if pgrp != self.proc.pid or state == "Z":
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            utime, stime = stat[stat.rindex(")") + 2 :].split()[11:13]
            total += int(utime) + int(stime)
        return total / CLOCK_TICKS

    def stop(self) -> None:
        """TERM to the group, KILL to what is left after ``STOP_TIMEOUT``, then reap."""
        pgid = self.proc.pid  # start_new_session: the server leads its own group
        self._signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            self.proc.poll()  # reaps the master, so that only live processes count
            if not group_alive(pgid):
                break
            if time.monotonic() >= deadline:
                self._signal_group(pgid, signal.SIGKILL)
                break
            time.sleep(0.05)
        self.proc.wait()
        self.log.close()

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


def parse_wrk(text: str) -> dict[str, float]:
    """requests, rps, p50 and p99 (seconds, when wrk ran with --latency) and errors.

    errors counts non-2xx/3xx responses plus socket errors (connect, read, write, timeout).
    """

    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    if not rps or not total:
        raise ServerFailed(f"unexpected wrk output: {text.strip()[-300:]!r}")
    out = {"rps": float(rps.group(1)), "requests": int(total.group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)", text, re.M)
        out[f"p{pct}"] = seconds(*m.groups()) if m else float("nan")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["socket_errors"] = sum(map(int, sock.groups())) if sock else 0
    out["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    out["errors"] = out["socket_errors"] + out["non2xx"]
    return out
