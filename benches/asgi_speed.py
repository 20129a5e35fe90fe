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
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import load
import rounds
from rounds import pinned
from serving import BIN, HOST, ROOT, Running, ServerFailed, free_port, help_text, parse_wrk

APP = "benches.asgi_apps:app"
HELLO = b"Hello, World!\n"
CLIENT_DIR = ROOT / "benches" / "ws_client"
CLIENT_TARGET = ROOT / "target" / "ws-client"
CLIENT = CLIENT_TARGET / "release" / "ws-client"
FIGURES = ("hello", "ws")
SUBJECT = "ferricorn"
# Without ferricorn the ratios are to this one.
BASELINE = "uvicorn"


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
NAMES = {key: server.name for key, server in SERVERS.items()}


def server_argv(key: str, port: int, args) -> list[str]:
    server = SERVERS[key]
    argv = [str(BIN / server.executable), *server.flags(args.workers, port), APP]
    return [*pinned(args, "0"), *argv]


# --- setup -----------------------------------------------------------------------------


def ferricorn_has_asgi() -> bool:
    """Whether .venv's ferricorn lists ``asgi`` among its worker classes."""
    text = help_text("ferricorn")
    line = next((ln for ln in text.splitlines() if "--worker-class" in ln), "")
    return re.search(r"\basgi\b", line) is not None


def ensure_installed(keys: list[str]) -> dict[str, str]:
    """pip-installs missing peers (requirements-bench.txt); returns the unusable ones, why."""
    load.install_missing(SERVERS[k].executable for k in keys)
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
    return load.version_line({SERVERS[k].executable: BIN / SERVERS[k].executable for k in keys})


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
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=rounds.CLIENT_GRACE)
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
    stdout, server_cpu, client_cpu = rounds.run_client(cmd, server, args.duration)
    if figure == "hello":
        parsed = parse_wrk(stdout)
        count, errors, rate, first_error = (
            parsed["requests"],
            int(parsed["errors"]),
            parsed["rps"],
            None,
        )
    else:
        out = json.loads(stdout)
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

    def measure_one(key: str, figure: str) -> Run:
        return measure(figure, *started[key], args)

    def warm_up(key: str, figure: str) -> list[str]:
        return client_command(figure, started[key][1], 1, args)

    return rounds.run_rounds(list(started), FIGURES, NAMES, measure_one, warm_up, args, failures)


# --- report ----------------------------------------------------------------------------


def table_rows(results: dict, started: dict) -> list[list[str]]:
    rows = []
    for figure in FIGURES:
        for key in started:
            if runs := results.get((key, figure)):
                rows.append([figure, SERVERS[key].name, *rounds.run_cells(runs)])
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
            if mine and theirs:
                rows.append([figure, names, *rounds.ratio_cells(mine, theirs)[1]])
    return rows


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
    table = ([*header, "client cores", "errors"], table_rows(results, started), (0, 1))
    header = ["figure", "ratio of", "ratio", "rounds", "CPU ratio"]
    ratios = (header, ratio_rows(results, list(started)), (0, 1))
    notes = rounds.client_bound(results, NAMES, "hello", args)
    rounds.print_tables(about, table, ratios, failures, notes, args)
    return about


# --- main ------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = rounds.parser(__doc__, list(SERVERS), "ws_client's WebSockets", rounds=3)
    add = parser.add_argument
    add("--ws-size", type=int, default=32, help="bytes per WebSocket message [32]")
    args = parser.parse_args(argv)
    rounds.check_options(parser, args, "ws_size")
    return args


def main() -> None:
    args = parse_args()
    for tool in ("wrk", *(["taskset"] if args.pin else [])):
        if not shutil.which(tool):
            sys.exit(f"benches/asgi_speed.py needs {tool}, from Debian (apt-get install -y)")
    # A TERM to the harness unwinds through the servers' stop().
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rounds.build_client(CLIENT_DIR, CLIENT_TARGET, "benches/asgi_speed.py")
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
