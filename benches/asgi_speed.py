"""ASGI speed: ferricorn ``-k asgi`` against uvicorn, Granian and gunicorn 27, one run.

Run on demand, never in ``make test``: ``.venv/bin/python benches/asgi_speed.py [options]``
(``make build`` first, so that .venv's ferricorn is the current code). Issue 13's target:
with 2 workers, ferricorn ahead of every peer on both figures.

What it does:

- One app for every server and figure: ``benches/asgi_apps.py`` (raw ASGI: hello world
  over HTTP, an echo over WebSocket, lifespan answered).
- Servers (``--servers``, default all), ``--workers`` processes each (default 2), on
  127.0.0.1, free ports, all started once and loaded in turn:
  ``uvicorn`` (``--http httptools --workers N --no-access-log``: uvloop and its default
  WebSocket protocol, websockets-sansio in 0.55; access log off as the others have it by
  default), ``granian`` (``--interface asgi --workers N``), ``gunicorn``
  (``-k asgi -w N``, uvloop through ``--asgi-loop auto``) and ``ferricorn``
  (``-k asgi -w N``), the last only when ``ferricorn --help`` lists ``asgi`` among the
  worker classes (otherwise it is skipped with a message).
- Figure 1, ``hello``: requests/s with keep-alive, wrk ``-t1 -c50`` (``--wrk-threads``,
  ``--connections``), ``--duration`` seconds.
- Figure 2, ``ws``: WebSocket echo messages/s, ``benches/ws_client`` (Rust, built here with
  cargo; the same client for every server): ``--connections`` WebSockets, each sending a
  ``--ws-size``-byte text message and waiting for its echo, over and over.
- Rounds (``--rounds``, default 3): each round runs both figures on every server, the
  server order rotating, so the shared machine's noise falls on all of them. ``--pin`` puts
  the servers on CPU 0 and the clients on CPU 1 (taskset).
- The table shows medians over the rounds, the server's CPU time per response or message
  (every process of the server, user + system) and the client's, and the cores the client
  kept busy; then ferricorn's ratio to each peer when it ran (the median of the rounds'
  ratios and their range), else each server's ratio to uvicorn. ``--markdown`` prints
  Markdown for docs/benchmarks.md; ``--json PATH`` writes every round's figures.

uvicorn, gunicorn and granian are pip-installed from ``requirements-bench.txt`` when missing
(as ``benches/load.py`` does); wrk comes from Debian (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import load
from serving import BIN, HOST, ROOT, Running, ServerFailed, free_port, parse_wrk

APP = "benches.asgi_apps:app"
HELLO = b"Hello, World!\n"
CLIENT_DIR = ROOT / "benches" / "ws_client"
CLIENT_TARGET = ROOT / "target" / "ws-client"
CLIENT = CLIENT_TARGET / "release" / "ws-client"
FIGURES = ("hello", "ws")
SUBJECT = "ferricorn"
# Without ferricorn the ratios are to this one.
BASELINE = "uvicorn"
# A client this busy (cores over its limit) may be what limits the figure.
CLIENT_BUSY = 0.9
# How long a client may overrun --duration before the run counts as failed.
CLIENT_GRACE = 30.0


@dataclass(frozen=True)
class Server:
    """One ASGI server under test."""

    #: Name in the table.
    name: str
    #: Console script next to the running interpreter.
    executable: str
    #: Flags before the app, from (workers, port).
    flags: Callable[[int, int], list[str]]


def _gunicorn_style(workers: int, port: int) -> list[str]:
    return ["-k", "asgi", "-w", str(workers), "-b", f"{HOST}:{port}"]


def _uvicorn(workers: int, port: int) -> list[str]:
    out = ["--http", "httptools", "--workers", str(workers), "--host", HOST]
    return out + ["--port", str(port), "--no-access-log"]


def _granian(workers: int, port: int) -> list[str]:
    return ["--interface", "asgi", "--workers", str(workers), "--host", HOST, "--port", str(port)]


SERVERS = {
    "ferricorn": Server("ferricorn -k asgi", "ferricorn", _gunicorn_style),
    "uvicorn": Server("uvicorn httptools", "uvicorn", _uvicorn),
    "granian": Server("granian asgi", "granian", _granian),
    "gunicorn": Server("gunicorn -k asgi", "gunicorn", _gunicorn_style),
}


def server_argv(key: str, port: int, args) -> list[str]:
    server = SERVERS[key]
    argv = [str(BIN / server.executable), *server.flags(args.workers, port), APP]
    return [*pinned(args, "0"), *argv]


def pinned(args, cpu: str) -> list[str]:
    """``--pin``: servers on CPU 0, the clients on CPU 1, so neither takes the other's core."""
    return ["taskset", "-c", cpu] if args.pin else []


# --- setup -----------------------------------------------------------------------------


def ferricorn_has_asgi() -> bool:
    """Whether .venv's ferricorn lists ``asgi`` among its worker classes."""
    try:
        text = subprocess.run(
            [str(BIN / "ferricorn"), "--help"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    line = next((ln for ln in text.splitlines() if "--worker-class" in ln), "")
    return re.search(r"\basgi\b", line) is not None


def ensure_installed(keys: list[str]) -> dict[str, str]:
    """pip-installs missing peers (requirements-bench.txt); returns the unusable ones, why."""
    missing = [k for k in keys if k != SUBJECT and not (BIN / SERVERS[k].executable).exists()]
    wanted = [req for req in (load.requirement_for(SERVERS[k].executable) for k in missing) if req]
    if wanted:
        print(f"installing {', '.join(wanted)} with pip", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", *wanted]
        if subprocess.run(pip, check=False).returncode != 0:
            print("pip failed: those servers are skipped", file=sys.stderr)
    unusable = {}
    for key in keys:
        path = BIN / SERVERS[key].executable
        if not path.exists():
            hint = "make build" if key == SUBJECT else "pip install -r requirements-bench.txt"
            unusable[key] = f"not installed ({path} missing; {hint})"
        elif key == SUBJECT and not ferricorn_has_asgi():
            unusable[key] = "`ferricorn --help` lists no asgi worker class yet"
    return unusable


def versions(keys: list[str]) -> str:
    """One line naming what ran, for the table's header."""
    parts = []
    for key in keys:
        try:
            done = subprocess.run(
                [str(BIN / SERVERS[key].executable), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"(\d+\.\d+[\w.]*)", done.stdout + done.stderr)
        parts.append(f"{SERVERS[key].executable} {found.group(1) if found else '?'}")
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+\.\d+\.\d+)", wrk)
    parts.append(f"wrk {found.group(1) if found else '?'}")
    return ", ".join([*parts, f"Python {platform.python_version()}"])


def build_client() -> None:
    if not shutil.which("cargo"):
        sys.exit("benches/asgi_speed.py builds benches/ws_client with cargo, which is missing")
    cmd = ["cargo", "build", "--release", "--quiet", "--manifest-path"]
    cmd += [str(CLIENT_DIR / "Cargo.toml"), "--target-dir", str(CLIENT_TARGET)]
    subprocess.run(cmd, check=True)


# --- checks ----------------------------------------------------------------------------


def check_hello(port: int) -> None:
    """The response is hello world's, whole: a fast wrong answer must not look fast."""
    try:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError as e:
        raise ServerFailed(f"check request failed: {e!r}") from None
    if data[8:12] != b" 200" or not data.endswith(HELLO):
        raise ServerFailed(f"check request: unexpected answer {data[:200]!r}")


def check_echo(port: int) -> None:
    """A second of one ws_client connection: echoes come back and nothing fails."""
    cmd = [str(CLIENT), "--port", str(port), "--connections", "1", "--duration", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_GRACE)
    out = json.loads(done.stdout) if done.returncode == 0 else {}
    if not out.get("messages") or out.get("errors"):
        raise ServerFailed(f"WebSocket echo check: {done.stdout.strip() or done.stderr[-300:]}")


# --- the clients -----------------------------------------------------------------------


@dataclass
class Run:
    """One figure measured on one server in one round."""

    #: Responses (hello) or echoed messages (ws) per second.
    rate: float
    #: Responses or messages counted.
    count: int
    #: wrk's non-2xx responses and socket errors; ws_client's failed connections.
    errors: int
    #: Server CPU (all its processes, user + system) per response or message, microseconds.
    server_us: float
    #: The client's own CPU per response or message, microseconds.
    client_us: float
    #: The first error ws_client met, if any.
    first_error: str | None = None
    #: Which round (0-based).
    round: int = 0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def client_command(figure: str, port: int, seconds: int, args) -> list[str]:
    if figure == "hello":
        cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s"]
        return [*pinned(args, "1"), *cmd, "--timeout", "10s", f"http://{HOST}:{port}/"]
    cmd = [str(CLIENT), "--host", HOST, "--port", str(port), "--path", "/ws"]
    cmd += ["--connections", str(args.connections), "--duration", str(seconds)]
    return [*pinned(args, "1"), *cmd, "--size", str(args.ws_size)]


def measure(figure: str, server: Running, port: int, args) -> Run:
    """One client run against one server, with the CPU both sides spent on it."""
    cmd = client_command(figure, port, args.duration, args)
    server_before, client_before = server.cpu_seconds(), children_cpu()
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.duration + CLIENT_GRACE
        )
    except subprocess.TimeoutExpired:
        raise ServerFailed(f"{cmd[0]} ran past {args.duration + CLIENT_GRACE:g}s") from None
    server_cpu, client_cpu = server.cpu_seconds() - server_before, children_cpu() - client_before
    server.check_alive()
    if done.returncode != 0:
        raise ServerFailed(f"{cmd[0]} exited with {done.returncode}: {done.stderr[-300:]!r}")
    if figure == "hello":
        parsed = parse_wrk(done.stdout)
        count, errors, rate, first_error = (
            parsed["requests"],
            int(parsed["errors"]),
            parsed["rps"],
            None,
        )
    else:
        out = json.loads(done.stdout)
        count, errors, first_error = out["messages"], out["errors"], out["first_error"]
        rate = count / out["seconds"]
    per = 1e6 / count if count else float("nan")
    return Run(rate, count, errors, server_cpu * per, client_cpu * per, first_error)


# --- rounds ----------------------------------------------------------------------------


def start_servers(keys, args, failures) -> dict[str, tuple[Running, int]]:
    """Starts every server and checks both answers; failures go to ``failures``."""
    started = {}
    for key in keys:
        port = free_port()
        running = Running(server_argv(key, port, args))
        try:
            running.wait_ready(port)
            check_hello(port)
            check_echo(port)
            started[key] = (running, port)
        except ServerFailed as e:
            running.stop()
            failures[SERVERS[key].name] = str(e)
            print(f"{SERVERS[key].name}: FAILED: {e}", file=sys.stderr)
    return started


def run_rounds(started: dict, args, failures: dict) -> dict[tuple[str, str], list[Run]]:
    """Every round runs both figures on every server; the server order rotates per round."""
    keys = list(started)
    for key in keys:  # warm-up: a second of each figure
        for figure in FIGURES:
            cmd = client_command(figure, started[key][1], 1, args)
            subprocess.run(cmd, capture_output=True, check=False)
    results: dict[tuple[str, str], list[Run]] = {}
    for rnd in range(args.rounds):
        for key in keys[rnd % len(keys) :] + keys[: rnd % len(keys)]:
            running, port = started[key]
            for figure in FIGURES:
                what = f"{SERVERS[key].name} {figure}"
                if what in failures:
                    continue
                try:
                    run = measure(figure, running, port, args)
                except ServerFailed as e:
                    failures[what] = str(e)
                    print(f"round {rnd + 1}: {what}: FAILED: {e}", file=sys.stderr)
                    continue
                run.round = rnd
                results.setdefault((key, figure), []).append(run)
                print(
                    f"round {rnd + 1}/{args.rounds}: {SERVERS[key].name:<18} {figure:<5} "
                    f"{run.rate:>9.0f}/s  server {run.server_us:7.1f} us  client "
                    f"{run.client_us:6.1f} us  errors {run.errors}",
                    file=sys.stderr,
                )
    return results


# --- report ----------------------------------------------------------------------------


def client_cores(run: Run) -> float:
    return run.client_us * run.rate / 1e6


def table_rows(results: dict, started: dict) -> list[list[str]]:
    rows = []
    for figure in FIGURES:
        for key in started:
            runs = results.get((key, figure))
            if not runs:
                continue
            rates = [r.rate for r in runs]
            rows.append(
                [
                    figure,
                    SERVERS[key].name,
                    f"{load.median(rates):.0f}",
                    f"{min(rates):.0f}-{max(rates):.0f}",
                    f"{load.median([r.server_us for r in runs]):.1f}",
                    f"{load.median([r.client_us for r in runs]):.1f}",
                    f"{load.median([client_cores(r) for r in runs]):.2f}",
                    str(sum(r.errors for r in runs)),
                ]
            )
    return rows


def ratio_rows(results: dict, keys: list[str]) -> list[list[str]]:
    """ferricorn over each peer (each server over uvicorn without it), per figure: the
    median of the rounds' ratios, their range, and the CPU ratio (the other's CPU per
    response over this one's: above 1, this one spends less)."""
    subject = SUBJECT if SUBJECT in keys else BASELINE
    rows = []
    for figure in FIGURES:
        for other in keys:
            if other == subject:
                continue
            mine, theirs = results.get((subject, figure)), results.get((other, figure))
            if SUBJECT not in keys:  # each server over the baseline
                mine, theirs = theirs, mine
                names = f"{SERVERS[other].name} / {SERVERS[subject].name}"
            else:
                names = f"{SERVERS[subject].name} / {SERVERS[other].name}"
            if not mine or not theirs:
                continue
            by_round = {r.round: r for r in theirs}
            pairs = [(a, by_round[a.round]) for a in mine if a.round in by_round]
            rates = [a.rate / b.rate for a, b in pairs]
            cpu = [b.server_us / a.server_us for a, b in pairs if a.server_us > 0]
            cpu_text = f"{load.median(cpu):.2f}" if cpu else "-"
            spread = f"{min(rates):.2f}-{max(rates):.2f}"
            rows.append([figure, names, f"{load.median(rates):.2f}", spread, cpu_text])
    return rows


def client_bound(results: dict, args) -> list[str]:
    notes = []
    for (key, figure), runs in results.items():
        limit = args.wrk_threads if figure == "hello" else (1 if args.pin else None)
        busy = load.median([client_cores(r) for r in runs])
        if limit and busy >= CLIENT_BUSY * limit:
            notes.append(
                f"{SERVERS[key].name} {figure}: the client kept {busy:.2f} of {limit} cores "
                "busy, so the figure may be the client's"
            )
    return notes


def conditions(args, about: str) -> str:
    pin = "servers on CPU 0, clients on CPU 1 (taskset)" if args.pin else "not pinned"
    return (
        f"{args.workers} workers per server. hello: wrk -t{args.wrk_threads} "
        f"-c{args.connections}, keep-alive; ws: ws_client, {args.connections} WebSockets, "
        f"{args.ws_size}-byte text messages, each waiting for its echo. Median of "
        f"{args.rounds} x {args.duration}s per row; {pin}. {about}."
    )


def print_report(results: dict, started: dict, failures: dict, args) -> str:
    about = conditions(args, versions(list(started)))
    header = ["figure", "server", "per s", "rounds", "server CPU us", "client CPU us"]
    header += ["client cores", "errors"]
    print(f"\n{about}\n")
    print("\n".join(load.render(header, table_rows(results, started), args.markdown, (0, 1))))
    ratios = ratio_rows(results, list(started))
    if ratios:
        print()
        header = ["figure", "ratio of", "ratio", "rounds", "CPU ratio"]
        print("\n".join(load.render(header, ratios, args.markdown, text=(0, 1))))
    for what, why in failures.items():
        print(f"- skipped {what}: {why}" if args.markdown else f"skipped {what}: {why}")
    for note in client_bound(results, args):
        print(f"- {note}" if args.markdown else note)
    return about


# --- main ------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--servers", type=load.comma_list(list(SERVERS)), default=list(SERVERS), help="[all]")
    add("--workers", type=int, default=2, help="worker processes per server [2]")
    add("--connections", type=int, default=50, help="wrk -c, and ws_client's WebSockets [50]")
    add("--wrk-threads", type=int, default=1, help="wrk -t [1]")
    add("--ws-size", type=int, default=32, help="bytes per WebSocket message [32]")
    add("--duration", type=int, default=5, help="seconds per run [5]")
    add("--rounds", type=int, default=3, help="rounds; the table shows the median [3]")
    add("--pin", action="store_true", help="servers on CPU 0, clients on CPU 1")
    add("--markdown", action="store_true", help="print the tables as Markdown")
    add("--json", type=Path, help="write every round's figures to this file")
    args = parser.parse_args(argv)
    if min(args.workers, args.rounds, args.duration, args.ws_size) < 1:
        parser.error("--workers, --rounds, --duration and --ws-size must be positive")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    return args


def main() -> None:
    args = parse_args()
    for tool in ("wrk", *(["taskset"] if args.pin else [])):
        if not shutil.which(tool):
            sys.exit(f"benches/asgi_speed.py needs {tool}, from Debian (apt-get install -y)")
    # A TERM to the harness unwinds through the servers' stop().
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build_client()
    unusable = ensure_installed(args.servers)
    failures = {SERVERS[k].name: why for k, why in unusable.items()}
    for key, why in unusable.items():
        print(f"{SERVERS[key].name}: skipped: {why}", file=sys.stderr)
    keys = [k for k in args.servers if k not in unusable]
    started = start_servers(keys, args, failures)
    try:
        results = run_rounds(started, args, failures) if started else {}
    finally:
        for running, _ in started.values():
            running.stop()
    about = print_report(results, started, failures, args)
    if args.json:
        report = {
            "conditions": about,
            "runs": {f"{k} {f}": [asdict(r) for r in runs] for (k, f), runs in results.items()},
            "ratios": ratio_rows(results, list(started)),
            "skipped": failures,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
