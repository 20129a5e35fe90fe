"""Speed over TLS: ferricorn against Granian and gunicorn gthread, each with TLS, one run.

Run on demand, never in ``make test``: ``.venv/bin/python benches/tls_speed.py [options]``
(``make build`` first, so that .venv's ferricorn is the current code). Issue 12's target:
hello world, keep-alive, 2 workers, ferricorn's async worker >= 1.5x Granian's and >= 5x
gunicorn gthread's requests/s over https; and new TLS handshakes per second against both.

What it does:

- A self-signed certificate for 127.0.0.1 made with openssl at the start (``--key``:
  ``ec``, ECDSA P-256, the default; ``rsa``, RSA 2048; ``both``, one whole run each, since
  a handshake's cost depends mostly on the key's signature).
- Servers (``--servers``, default all), ``benches/apps.py``'s hello world (WSGI for all),
  ``--workers`` processes each (default 2), on 127.0.0.1, free ports, all started once
  and loaded in turn: ``ferricorn`` (``-k async --certfile --keyfile``), ``granian``
  (``--interface wsgi --ssl-certificate --ssl-keyfile``, its defaults otherwise),
  ``gunicorn`` (``-k gthread --threads 4 --certfile --keyfile``, 4 threads as
  ``benches/load.py`` runs it; ``--gthread-threads``) and ``ferricorn-plain`` (ferricorn
  async without TLS: the sanity column, what TLS costs ferricorn). A server that does not
  start (ferricorn before it has ``--certfile``) is reported and left out.
- Figure 1, requests/s with keep-alive: wrk ``-t1 -c50`` (``--wrk-threads``,
  ``--connections``) over https, ``--duration`` seconds.
- Figure 2, new connections/s, one request each, each with a full handshake:
  ``benches/tls_client`` (Rust, rustls with ring; built here with cargo), ``--connections``
  threads each connecting, handshaking, sending one ``GET /`` with ``Connection: close``,
  reading the response and closing. Not wrk with ``Connection: close``: wrk keeps its
  OpenSSL session and offers it again on every reconnect (a relay counting
  ``pre_shared_key`` extensions saw 113 of 115 ClientHellos offer one, Granian accepted
  59), so it measures resumptions. Not ``openssl s_time -new``: full handshakes, but one
  at a time per process and about 1 ms of client CPU each (OpenSSL 3.0), so on 2 cores it
  would measure itself. tls_client has resumption off and counts each handshake's kind as
  rustls reports it (full, full after a HelloRetryRequest, resumed), shown in the table;
  ``--check-hellos`` also counts, through ``benches/tls_hellos.py``'s relay, the hellos
  that offer and accept a session, for wrk and tls_client on each TLS server.
- Rounds (``--rounds``, default 5): each round runs both figures on every server, the
  server order rotating, so the shared machine's noise falls on all of them. ``--pin``
  puts the servers on CPU 0 and the clients on CPU 1 (taskset).
- The table shows medians over the rounds, the servers' CPU time per response (every
  process of the server, user + system, over the responses: moved less by other jobs than
  the rates), the clients' own CPU per response and the cores they kept busy (near wrk's
  thread count, or 1 with ``--pin``, the figure is the client's: a note says so under the
  table, ``--wrk-threads 2`` is the way out for wrk); then ferricorn's ratios to each peer
  (the median of the rounds' ratios, and their range), with the goal where the issue
  sets one. ``--markdown`` prints Markdown for docs/benchmarks.md; ``--json PATH`` writes
  every round's figures.

gunicorn and granian are pip-installed from ``requirements-bench.txt`` when missing (as
``benches/load.py`` does); wrk and openssl come from Debian (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import load
import rounds
import tls_hellos
from rounds import pinned
from serving import BIN, HOST, ROOT, Running, ServerFailed, free_port, parse_wrk

CLIENT_DIR = ROOT / "benches" / "tls_client"
CLIENT_TARGET = ROOT / "target" / "tls-client"
CLIENT = CLIENT_TARGET / "release" / "tls-client"
HELLO = b"Hello, World!\n"
# Figures: keep-alive requests/s (wrk) and new connections/s (tls_client).
FIGURES = ("keepalive", "handshake")
# Issue 12's goals, on keep-alive requests/s: ferricorn (TLS) over each peer.
GOALS = {("keepalive", "granian"): 1.5, ("keepalive", "gunicorn"): 5.0}
SUBJECTS = ("ferricorn", "ferricorn-plain")
PEERS = ("granian", "gunicorn")


@dataclass(frozen=True)
class Server:
    """One server under test."""

    #: Name in the table.
    name: str
    #: Whether it serves https (ferricorn-plain does not).
    tls: bool
    #: Its key in benches/load.py's SERVERS, for ensure_installed and versions.
    load_key: str


SERVERS = {
    "ferricorn": Server("ferricorn async TLS", True, "ferricorn-async"),
    "granian": Server("granian TLS", True, "granian"),
    "gunicorn": Server("gunicorn gthread TLS", True, "gunicorn-gthread"),
    "ferricorn-plain": Server("ferricorn async plain", False, "ferricorn-async"),
}
NAMES = {key: server.name for key, server in SERVERS.items()}


def server_argv(key: str, port: int, cert: Path, pem_key: Path, args) -> list[str]:
    workers = str(args.workers)
    if key == "granian":
        argv = [str(BIN / "granian"), "--interface", "wsgi", "--workers", workers]
        argv += ["--host", HOST, "--port", str(port)]
        argv += ["--ssl-certificate", str(cert), "--ssl-keyfile", str(pem_key)]
    elif key == "gunicorn":
        argv = [str(BIN / "gunicorn"), "-k", "gthread", "-w", workers]
        argv += ["--threads", str(args.gthread_threads), "-b", f"{HOST}:{port}"]
        argv += ["--certfile", str(cert), "--keyfile", str(pem_key)]
    else:
        argv = [str(BIN / "ferricorn"), "-k", "async", "-w", workers, "-b", f"{HOST}:{port}"]
        if SERVERS[key].tls:
            argv += ["--certfile", str(cert), "--keyfile", str(pem_key)]
    return [*pinned(args, "0"), *argv, "benches.apps:hello"]


# --- the certificate and the checks ----------------------------------------------------


def make_certificate(directory: Path, kind: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PKCS#8, which Granian requires)."""
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    algorithm = {
        "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        "rsa": ["-newkey", "rsa:2048"],
    }[kind]
    cmd = ["openssl", "req", "-x509", *algorithm, "-nodes", "-days", "2"]
    cmd += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    cmd += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(cmd, check=True, capture_output=True)
    return cert, key


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the run's own self-signed certificate
    return context


def get_hello(port: int, tls: bool, timeout: float = 1.0) -> tuple[bytes, str]:
    """One ``GET /`` on a new connection: the raw response and the TLS version and cipher."""
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        sock = client_context().wrap_socket(raw, server_hostname=None) if tls else raw
        # Asked now: after the server's close, Python's ssl no longer says.
        negotiated = f"{sock.version()} {sock.cipher()[0]}" if tls else "plain"
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data, negotiated


def probe(tls: bool):
    """wait_ready's probe: a 200 over TLS for the TLS servers."""

    def answers(port: int) -> bool:
        try:
            return get_hello(port, tls)[0][8:12] == b" 200"
        except (OSError, ssl.SSLError):
            return False

    return answers


def check_hello(port: int, tls: bool) -> str:
    """The response is hello world's, whole: a fast wrong answer must not look fast."""
    try:
        data, negotiated = get_hello(port, tls, timeout=10)
    except (OSError, ssl.SSLError) as e:
        raise ServerFailed(f"check request failed: {e!r}") from None
    if data[8:12] != b" 200" or not data.endswith(HELLO):
        raise ServerFailed(f"check request: unexpected answer {data[:200]!r}")
    return negotiated


# --- the clients -----------------------------------------------------------------------


@dataclass
class Run:
    """One figure measured on one server in one round."""

    #: Responses per second.
    rate: float
    #: Responses counted.
    responses: int
    #: Non-2xx responses and socket errors (wrk), failed connections (tls_client).
    errors: int
    #: Server CPU (all its processes, user + system) per response, microseconds.
    server_us: float
    #: The client's own CPU per response, microseconds.
    client_us: float
    #: tls_client's count of each handshake kind (full, retried, resumed); {} for wrk.
    kinds: dict = field(default_factory=dict)
    #: The first error tls_client met, if any.
    first_error: str | None = None
    #: Version, cipher suite and key exchange group tls_client's first handshake got.
    negotiated: str | None = None
    #: Which round (0-based).
    round: int = 0


def client_command(figure: str, port: int, tls: bool, seconds: int, args) -> list[str]:
    if figure == "keepalive":
        cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s"]
        url = f"{'https' if tls else 'http'}://{HOST}:{port}/"
        return [*pinned(args, "1"), *cmd, "--timeout", "10s", url]
    cmd = [str(CLIENT), "--host", HOST, "--port", str(port)]
    cmd += ["--connections", str(args.connections), "--duration", str(seconds)]
    return [*pinned(args, "1"), *cmd, *([] if tls else ["--plain"])]


def measure(figure: str, server: Running, port: int, tls: bool, args) -> Run:
    """One client run against one server, with the CPU both sides spent on it."""
    cmd = client_command(figure, port, tls, args.duration, args)
    stdout, server_cpu, client_cpu = rounds.run_client(cmd, server, args.duration)
    if figure == "keepalive":
        parsed = parse_wrk(stdout)
        responses, errors, rate = parsed["requests"], int(parsed["errors"]), parsed["rps"]
        kinds, first_error, negotiated = {}, None, None
    else:
        out = json.loads(stdout)
        responses, errors, rate = out["ok"], out["errors"], out["ok"] / out["seconds"]
        kinds = {k: out[k] for k in ("full", "retried", "resumed")}
        first_error, negotiated = out["first_error"], out["negotiated"]
    per = 1e6 / responses if responses else float("nan")
    cpu = (server_cpu * per, client_cpu * per)
    return Run(rate, responses, errors, *cpu, kinds, first_error, negotiated)


# --- rounds ----------------------------------------------------------------------------


def start_servers(keys, cert, pem_key, args, failures) -> dict[str, tuple[Running, int, str]]:
    """Starts every server; the ones that fail are in ``failures`` with the reason."""
    started = {}
    for key in keys:
        port = free_port()
        running = Running(server_argv(key, port, cert, pem_key, args))
        try:
            running.wait_ready(port, probe(SERVERS[key].tls))
            started[key] = (running, port, check_hello(port, SERVERS[key].tls))
        except ServerFailed as e:
            running.stop()
            failures[SERVERS[key].name] = str(e)
            print(f"{SERVERS[key].name}: FAILED: {e}", file=sys.stderr)
    return started


def check_hellos(started: dict, args) -> dict[str, str]:
    """``--check-hellos``: a second of wrk with ``Connection: close`` and one of tls_client
    through tls_hellos's relay, per TLS server: who offers to resume, who accepts."""
    found = {}
    for key, (_, port, _) in started.items():
        if not SERVERS[key].tls:
            continue
        wrk = ["wrk", "-t1", "-c2", "-d1s", "-H", "Connection: close", f"https://{HOST}:{{port}}/"]
        ours = [str(CLIENT), "--port", "{port}", "--connections", "2", "--duration", "1"]
        for client, cmd in (("wrk", wrk), ("tls_client", ours)):
            text = tls_hellos.describe(tls_hellos.through_relay(port, cmd))
            found[f"{SERVERS[key].name}, {client}"] = text
            print(f"hellos: {SERVERS[key].name}, {client} with Connection: close: {text}")
    return found


def run_rounds(started: dict, args, failures: dict) -> dict[tuple[str, str], list[Run]]:
    """Every round runs both figures on every server; the server order rotates per round."""

    def measure_one(key: str, figure: str) -> Run:
        running, port, _ = started[key]
        return measure(figure, running, port, SERVERS[key].tls, args)

    def warm_up(key: str, figure: str) -> list[str]:
        return client_command(figure, started[key][1], SERVERS[key].tls, 1, args)

    return rounds.run_rounds(list(started), FIGURES, NAMES, measure_one, warm_up, args, failures)


# --- report ----------------------------------------------------------------------------


def kinds_text(runs: list[Run]) -> str:
    totals = {k: sum(r.kinds.get(k, 0) for r in runs) for k in ("full", "retried", "resumed")}
    if not any(totals.values()):
        return "-"
    return f"{totals['full']} full, {totals['retried']} HRR, {totals['resumed']} resumed"


def table_rows(results: dict, started: dict) -> list[list[str]]:
    rows = []
    for figure in FIGURES:
        for key in started:
            runs = results.get((key, figure))
            if not runs:
                continue
            rows.append(
                [
                    figure,
                    SERVERS[key].name,
                    runs[0].negotiated or started[key][2],
                    *rounds.run_cells(runs),
                    kinds_text(runs),
                ]
            )
    return rows


def ratio_rows(results: dict) -> list[list[str]]:
    """Each subject over each peer, per figure: the median of the rounds' ratios (the pair
    of a round ran seconds apart), their range, the same for server CPU per response (the
    peer's over the subject's: above 1, the subject spends less), and the goal."""
    rows = []
    for figure in FIGURES:
        for subject in SUBJECTS:
            for peer in PEERS:
                mine, theirs = results.get((subject, figure)), results.get((peer, figure))
                if not mine or not theirs:
                    continue
                ratio, cells = rounds.ratio_cells(mine, theirs)
                goal = GOALS.get((figure, peer)) if subject == "ferricorn" else None
                rows.append(
                    [
                        figure,
                        f"{SERVERS[subject].name} / {SERVERS[peer].name}",
                        *cells,
                        f">= {goal:g}" if goal else "-",
                        ("yes" if ratio >= goal else "NO") if goal else "-",
                    ]
                )
    return rows


def conditions(args, kind: str, versions: str) -> str:
    pin = "servers on CPU 0, clients on CPU 1 (taskset)" if args.pin else "not pinned"
    key = {"ec": "ECDSA P-256", "rsa": "RSA 2048"}[kind]
    return (
        f"Certificate: self-signed {key}. {args.workers} workers per server; gunicorn gthread "
        f"--threads {args.gthread_threads}. keepalive: wrk -t{args.wrk_threads} "
        f"-c{args.connections}; handshake: tls_client, {args.connections} connections, a new "
        f"one per request, resumption off. Median of {args.rounds} x {args.duration}s per "
        f"row; {pin}. {versions}."
    )


def versions(keys: list[str]) -> str:
    about = load.versions(sorted({SERVERS[k].load_key for k in keys}))
    return f"{about}, Python ssl {ssl.OPENSSL_VERSION}"


def print_report(kind: str, results: dict, started: dict, failures: dict, args) -> None:
    header = ["figure", "server", "negotiated", "per s", "rounds", "server CPU us"]
    header += ["client CPU us", "client cores", "errors", "handshakes"]
    table = (header, table_rows(results, started), (0, 1, 2, 9))
    header = ["figure", "ratio of", "ratio", "rounds", "CPU ratio", "goal", "met"]
    ratios = (header, ratio_rows(results), (0, 1))
    notes = rounds.client_bound(results, NAMES, "keepalive", args)
    about = conditions(args, kind, versions(list(started)))
    rounds.print_tables(about, table, ratios, failures, notes, args)


# --- main ------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = rounds.parser(__doc__, list(SERVERS), "tls_client's", rounds=5)
    add = parser.add_argument
    add("--key", choices=("ec", "rsa", "both"), default="ec", help="certificate key [ec]")
    add("--gthread-threads", type=int, default=load.GTHREAD_THREADS, help="gunicorn's [4]")
    add("--check-hellos", action="store_true", help="count resumption offers (tls_hellos.py)")
    args = parser.parse_args(argv)
    rounds.check_options(parser, args, "gthread_threads")
    return args


def run_key(kind: str, directory: Path, args, report: dict) -> None:
    """One whole run with one certificate: start, measure, stop, print."""
    cert, pem_key = make_certificate(directory, kind)
    failures = {SERVERS[k].name: why for k, why in args.unusable.items()}
    keys = [k for k in args.servers if k not in args.unusable]
    started = start_servers(keys, cert, pem_key, args, failures)
    try:
        hellos = check_hellos(started, args) if args.check_hellos else {}
        results = run_rounds(started, args, failures) if started else {}
    finally:
        for running, _, _ in started.values():
            running.stop()
    print_report(kind, results, started, failures, args)
    report[kind] = {
        "conditions": conditions(args, kind, versions(list(started))),
        "negotiated": {k: v[2] for k, v in started.items()},
        "runs": {f"{k} {f}": [asdict(r) for r in runs] for (k, f), runs in results.items()},
        "ratios": ratio_rows(results),
        "hellos": hellos,
        "skipped": failures,
    }


def main() -> None:
    args = parse_args()
    for tool in ("wrk", "openssl", *(["taskset"] if args.pin else [])):
        if not shutil.which(tool):
            sys.exit(f"benches/tls_speed.py needs {tool}, from Debian (apt-get install -y)")
    # A TERM to the harness unwinds through the servers' stop().
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rounds.build_client(CLIENT_DIR, CLIENT_TARGET, "benches/tls_speed.py")
    unusable = load.ensure_installed(sorted({SERVERS[k].load_key for k in args.servers}))
    args.unusable = {
        k: unusable[SERVERS[k].load_key] for k in args.servers if SERVERS[k].load_key in unusable
    }
    report = {"python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="ferricorn-tls-bench-") as directory:
        for kind in ("ec", "rsa") if args.key == "both" else (args.key,):
            run_key(kind, Path(directory), args, report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
