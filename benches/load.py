"""End-to-end load benchmark: ferricorn and its peers, same apps, same client, one run.

Run on demand, never in ``make test``: ``.venv/bin/python benches/load.py [options]``
(``make build`` first, so that .venv's ferricorn is the current code). With the defaults
(every server, the 4 scenarios, 2 connection counts, 3 rounds of 10 s) a run takes about
40 minutes.

What it does:

- Servers (``--servers``, default all): ``ferricorn-async``, ``ferricorn-async-log`` (the
  same with ``--access-logfile`` to a file, for the cost of access logging),
  ``ferricorn-async-pylog`` (the same file written through Python's ``logging``: a
  ``--log-config-json`` giving ``gunicorn.access`` a FileHandler), ``ferricorn-sync``,
  ``gunicorn-sync``, ``gunicorn-gthread`` (always ``--threads 4``, as it is usually run) and
  ``granian`` (``--interface wsgi``), each with ``--workers`` processes (default 2) bound to
  127.0.0.1 on a free port; and ``nginx``, the reference for a fixed body from memory
  (``return 200`` for hello, a static file for big; no app at all, so only those two),
  started in the foreground with a config generated under a temporary prefix, access log
  off, keep-alive on, ``worker_processes`` = ``--workers``.
- Scenarios (``--scenarios``, default all), apps from ``benches/apps.py``: ``hello`` (hello
  world), ``big`` (100 KB response), ``echo`` (1 MiB POST echoed back, sent by
  ``benches/post_1mb.lua``) and ``sleep`` (10 ms wait, as on a database; ferricorn async gets
  ``--threads T`` and granian ``--blocking-threads T`` for it, T = ``--threads``, default 8).
  ``100k``, ``post1m`` and ``sync-noka`` are big, echo and hello (the last always with
  ``Connection: close``) under the names of issue 10's targets.
- Client: wrk, ``-t2`` (``--wrk-threads``), keep-alive unless ``--no-keepalive`` (which sends
  ``Connection: close``), ``--duration`` seconds per run at each of ``--connections``
  (default 50 and 256).
- Rounds (``--rounds``, default 3): every round runs every server on every scenario, and the
  server order rotates between rounds, so that noise from the shared 2-core machine spreads
  over all of them. A server is started afresh for each scenario in each round. The table
  shows the median of the rounds; errors (non-2xx responses plus wrk's socket errors) are
  summed over them; RSS is the mean over the server's worker processes, read from /proc
  near the end of each run; CPU us/req is the user + system time of all the server's
  processes during the run over the responses it sent (the machine's other jobs take
  cores, and so req/s, from any server; they move its CPU time per response much less).
- The last column is each server's req/s over Granian's (over the first server's when
  Granian is not in the run). ``--markdown`` prints the table for docs/benchmarks.md.

Servers that are not installed, fail to start or answer the scenario wrongly are reported
and skipped; gunicorn and granian are pip-installed from ``requirements-bench.txt`` into the
running interpreter's environment when missing. wrk comes from Debian: ``apt-get install -y
wrk``. ``BENCH_VERBOSE=1`` shows the servers' own output.

``--targets`` runs issue 10's table in one go (about 7 minutes): hello (ferricorn async
against nginx and Granian), 100k and post1m (against Granian) and sync-noka (ferricorn sync
against gunicorn sync), each with only the servers it compares, wrk -t1 -c50, 5 rounds of
5 s unless ``--rounds``, ``--duration``, ``--connections`` or ``--wrk-threads`` say
otherwise. After the usual table it prints each target's ratio: the median over the rounds
of that round's subject req/s over its peer's, the range of those, the same for CPU time
per response (the peer's over the subject's), and whether the goal is met.

The non-keep-alive sync comparison of docs/benchmarks.md is
``benches/load.py --workers 4 --connections 50 --scenarios hello
--servers ferricorn-sync,gunicorn-sync --no-keepalive``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apps as bench_apps
from serving import (
    BENCHES,
    BIN,
    HOST,
    ROOT,
    Running,
    ServerFailed,
    arg_parser,
    free_port,
    help_text,
    median,
    parse_wrk,
)

REQUIREMENTS = ROOT / "requirements-bench.txt"

GTHREAD_THREADS = 4
BASELINE = "granian"
ECHO_BYTES = 1024 * 1024  # keep in step with benches/post_1mb.lua
# RSS is read this far into a run: late enough for buffers and threads to have grown.
RSS_AT = 0.9
# How long wrk may overrun --duration before it is killed and the run counted as failed.
WRK_GRACE = 30.0


@dataclass(frozen=True)
class Scenario:
    """One app and the request that exercises it."""

    #: Callable in benches/apps.py.
    app: str
    #: Body length of a correct answer, checked once before wrk runs.
    answer_bytes: int
    #: wrk script in benches/ for requests other than ``GET /``.
    lua: str | None = None
    #: Whether servers that have a thread-count setting get ``--threads`` for it.
    threaded: bool = False
    #: False: wrk sends ``Connection: close`` whatever ``--no-keepalive`` says.
    keepalive: bool = True


SCENARIOS = {
    "hello": Scenario("hello", answer_bytes=14),
    "big": Scenario("big", answer_bytes=100 * 1024),
    "echo": Scenario("echo", answer_bytes=ECHO_BYTES, lua="post_1mb.lua"),
    "sleep": Scenario("sleep", answer_bytes=14, threaded=True),
    # The targets' own names (`--targets`): the same apps, and hello without keep-alive.
    "100k": Scenario("big", answer_bytes=100 * 1024),
    "post1m": Scenario("echo", answer_bytes=ECHO_BYTES, lua="post_1mb.lua"),
    "sync-noka": Scenario("hello", answer_bytes=14, keepalive=False),
}


@dataclass(frozen=True)
class Server:
    """How to start one server under test."""

    #: Name in the table.
    name: str
    #: Executable next to the running interpreter.
    executable: str
    #: Command-line flags after the executable, from (workers, port, threads or None).
    flags: Callable[[int, int, int | None], list[str]]
    #: Apps (``Scenario.app``) it can serve; None: any WSGI app of benches/apps.py.
    apps: frozenset[str] | None = None

    def path(self) -> Path:
        """The WSGI servers are .venv's console scripts; nginx is the system's."""
        if self.apps is None:
            return BIN / self.executable
        found = shutil.which(self.executable) or shutil.which(f"/usr/sbin/{self.executable}")
        return Path(found or f"/usr/sbin/{self.executable}")

    def command(self, scenario: Scenario, workers: int, port: int, threads: int | None):
        argv = [str(self.path()), *self.flags(workers, port, threads)]
        if self.apps is None:
            return [*argv, f"benches.apps:{scenario.app}"]
        return [*argv, *nginx_flags(scenario, workers, port)]


def _ferricorn(worker_class: str, *extra: str):
    def flags(workers: int, port: int, threads: int | None) -> list[str]:
        out = ["-k", worker_class, "-w", str(workers), "-b", f"{HOST}:{port}", *extra]
        return out + (["--threads", str(threads)] if threads else [])

    return flags


# Where ferricorn-async-log writes its access log (a file, as in production; emptied
# by each start since the file is opened for appending and may grow large).
ACCESS_LOG = Path(tempfile.gettempdir()) / "ferricorn-bench-access.log"
# ferricorn-async-pylog writes the same file through Python's logging: a --log-config-json
# that gives gunicorn.access a FileHandler, the path gunicorn's logconfig users take.
PYLOG_CONFIG = Path(tempfile.gettempdir()) / "ferricorn-bench-pylog.json"


def pylog_config() -> dict:
    return {
        "version": 1,
        "root": {"level": "WARNING", "handlers": []},
        "formatters": {"message": {"format": "%(message)s"}},
        "handlers": {
            "access": {
                "class": "logging.FileHandler",
                "filename": str(ACCESS_LOG),
                "formatter": "message",
            },
            "error": {"class": "logging.StreamHandler", "formatter": "message"},
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def _gunicorn(worker_class: str):
    def flags(workers: int, port: int, threads: int | None) -> list[str]:
        out = ["-k", worker_class, "-w", str(workers), "-b", f"{HOST}:{port}"]
        # gthread always runs 4 threads, as it is usually deployed; sync has no threads.
        return out + (["--threads", str(GTHREAD_THREADS)] if worker_class == "gthread" else [])

    return flags


def _granian(workers: int, port: int, threads: int | None) -> list[str]:
    out = ["--interface", "wsgi", "--workers", str(workers), "--host", HOST, "--port", str(port)]
    return out + (["--blocking-threads", str(threads)] if threads else [])


# nginx is the reference for what serving a fixed body costs: `return 200` from memory
# for hello, one static file (page cache, sendfile) for big. It runs in the foreground
# (`daemon off`, so it is stopped like the others) with a prefix and config of its own
# here, as the current user, access log off, keep-alive on with no per-connection
# request limit (the WSGI servers have none).
NGINX_DIR = Path(tempfile.gettempdir()) / "ferricorn-bench-nginx"
NGINX_BODIES = {"hello": bench_apps.HELLO, "big": bench_apps.BIG}


def nginx_config(scenario: Scenario, workers: int, port: int) -> str:
    if scenario.app == "hello":
        body = bench_apps.HELLO.decode().replace("\n", "\\n")
        location = f'return 200 "{body}";'
    else:
        location = f"root {NGINX_DIR / 'www'}; try_files /{scenario.app} =404;"
    # Only a root master switches users; say the current one so that nothing runs as nobody.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temps = " ".join(
        f"{kind}_temp_path {NGINX_DIR / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
worker_processes {workers};
daemon off;
pid {NGINX_DIR / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    open_file_cache max=16;
    {temps}
    server {{
        listen {HOST}:{port};
        location / {{ {location} }}
    }}
}}
"""


def nginx_flags(scenario: Scenario, workers: int, port: int) -> list[str]:
    """Writes the config (and big's file) under NGINX_DIR; the flags that point nginx there."""
    (NGINX_DIR / "www").mkdir(parents=True, exist_ok=True)
    (NGINX_DIR / "www" / "big").write_bytes(bench_apps.BIG)
    conf = NGINX_DIR / "nginx.conf"
    conf.write_text(nginx_config(scenario, workers, port))
    return ["-p", str(NGINX_DIR), "-c", str(conf), "-e", "stderr"]


SERVERS = {
    "ferricorn-async": Server("ferricorn async", "ferricorn", _ferricorn("async")),
    "ferricorn-async-log": Server(
        "ferricorn async+log", "ferricorn", _ferricorn("async", "--access-logfile", str(ACCESS_LOG))
    ),
    "ferricorn-async-pylog": Server(
        "ferricorn async+pylog",
        "ferricorn",
        _ferricorn("async", "--log-config-json", str(PYLOG_CONFIG)),
    ),
    "ferricorn-sync": Server("ferricorn sync", "ferricorn", _ferricorn("sync")),
    "gunicorn-sync": Server("gunicorn sync", "gunicorn", _gunicorn("sync")),
    "gunicorn-gthread": Server("gunicorn gthread", "gunicorn", _gunicorn("gthread")),
    "granian": Server("granian", "granian", _granian),
    "nginx": Server("nginx", "nginx", lambda *_: [], apps=frozenset(NGINX_BODIES)),
}
# Servers whose thread setting applies to the `threaded` scenarios (granian's only when
# the installed version has --blocking-threads: see `main`).
THREADED = {"ferricorn-async", "ferricorn-async-log", "ferricorn-async-pylog", "granian"}


@dataclass
class Result:
    """One wrk run against one server."""

    rps: float
    p50: float
    p99: float
    errors: int
    rss_mib: float
    #: Server CPU time (every process, user + system) per response, microseconds: less
    #: moved by other jobs on the machine than req/s, which they take cores from.
    cpu_us: float = float("nan")
    #: Which round it was measured in (0-based), to pair it with its peers of that round.
    round: int = 0


@dataclass(frozen=True)
class Target:
    """One of issue 10's speed goals: subject's req/s over peer's on one scenario."""

    scenario: str
    subject: str
    peer: str
    #: The ratio the subject must reach.
    goal: float


# `--targets`: the table of issue 10, wrk -t1 -c50, 2 workers. hello against granian is a
# no-regression check (2.0x when the table was set).
TARGETS = [
    Target("hello", "ferricorn-async", "nginx", 0.9),
    Target("hello", "ferricorn-async", "granian", 2.0),
    Target("100k", "ferricorn-async", "granian", 1.5),
    Target("post1m", "ferricorn-async", "granian", 1.5),
    Target("sync-noka", "ferricorn-sync", "gunicorn-sync", 3.0),
]
TARGET_SCENARIOS = list(dict.fromkeys(t.scenario for t in TARGETS))


# --- one server, one scenario --------------------------------------------------------------


def check_answer(port: int, scenario: Scenario) -> None:
    """One request, checked, before wrk: a fast wrong answer must not look like a fast one."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        if scenario.lua:
            conn.request("POST", "/", body=b"x" * ECHO_BYTES)
        else:
            conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise ServerFailed(f"check request failed: {e!r}") from None
    finally:
        conn.close()
    if response.status != 200 or len(body) != scenario.answer_bytes:
        raise ServerFailed(
            f"check request: status {response.status}, {len(body)} bytes, "
            f"expected 200 and {scenario.answer_bytes}"
        )


# --- wrk -----------------------------------------------------------------------------------


def wrk_command(port: int, scenario: Scenario, connections: int, seconds: int, args):
    """wrk takes whole seconds only."""
    cmd = ["wrk", f"-t{min(args.wrk_threads, connections)}", f"-c{connections}"]
    cmd += [f"-d{seconds}s", f"--timeout={args.timeout}s"]
    cmd.append("--latency")
    if scenario.lua:
        cmd += ["-s", str(BENCHES / scenario.lua)]
    if not (args.keepalive and scenario.keepalive):
        cmd += ["-H", "Connection: close"]
    return [*cmd, f"http://{HOST}:{port}/"]


def run_wrk(server: Running, port: int, scenario: Scenario, connections: int, args) -> Result:
    """One wrk run; the workers' RSS is read at ``RSS_AT`` of the duration, while under load."""
    cmd = wrk_command(port, scenario, connections, args.duration, args)
    cpu_before = server.cpu_seconds()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            wrk.wait(timeout=args.duration * RSS_AT)
        except subprocess.TimeoutExpired:
            pass
        rss = server.worker_rss_mib()
        out, _ = wrk.communicate(timeout=args.duration + WRK_GRACE)
        cpu = server.cpu_seconds() - cpu_before
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    if wrk.returncode != 0:
        raise ServerFailed(f"wrk exited with {wrk.returncode}: {out.strip()[-200:]!r}")
    server.check_alive()
    parsed = parse_wrk(out)
    cpu_us = cpu * 1e6 / parsed["requests"] if parsed["requests"] else float("nan")
    return Result(parsed["rps"], parsed["p50"], parsed["p99"], int(parsed["errors"]), rss, cpu_us)


def warm_up(port: int, scenario: Scenario, args) -> None:
    if args.warmup > 0:
        cmd = wrk_command(port, scenario, min(args.connections), args.warmup, args)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def measure(key: str, scenario_key: str, args) -> dict[int, Result]:
    """Starts one server on one scenario and runs wrk at every connection count."""
    scenario = SCENARIOS[scenario_key]
    server = SERVERS[key]
    port = free_port()
    threads = args.threads if scenario.threaded and key in args.threaded else None
    if server.apps is not None and scenario.app not in server.apps:
        raise ServerFailed(f"serves only {', '.join(sorted(server.apps))}")
    argv = server.command(scenario, args.workers, port, threads)
    ACCESS_LOG.unlink(missing_ok=True)
    PYLOG_CONFIG.write_text(json.dumps(pylog_config()))
    with Running(argv) as running:
        running.wait_ready(port)
        check_answer(port, scenario)
        warm_up(port, scenario, args)
        return {c: run_wrk(running, port, scenario, c, args) for c in args.connections}


# --- setup ---------------------------------------------------------------------------------


def requirement_for(executable: str) -> str | None:
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if re.split(r"[=<>!~\[ ;]", line)[0].lower() == executable:
            return line
    return None


def install_missing(executables) -> None:
    """pip-installs (requirements-bench.txt's line) each of ``executables`` that .venv
    lacks; ferricorn is ``make build``'s."""
    missing = [exe for exe in sorted(set(executables) - {"ferricorn"}) if not (BIN / exe).exists()]
    wanted = [req for req in map(requirement_for, missing) if req]
    if wanted:
        print(f"installing {', '.join(wanted)} with pip", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", *wanted]
        if subprocess.run(pip, check=False).returncode != 0:
            print("pip failed: those servers are skipped", file=sys.stderr)


def ensure_installed(keys: list[str]) -> dict[str, str]:
    """pip-installs the missing peers; returns the servers that still cannot run, and why."""
    install_missing({SERVERS[k].executable for k in keys if SERVERS[k].apps is None})
    unusable = {}
    for key in keys:
        server = SERVERS[key]
        if not server.path().exists():
            hint = {"ferricorn": "make build", "nginx": "apt-get install -y nginx"}.get(
                server.executable, f"pip install -r {REQUIREMENTS.name}"
            )
            unusable[key] = f"not installed ({server.path()} missing; {hint})"
    return unusable


def versions(keys: list[str]) -> str:
    """One line naming what ran, for the table's header."""
    return version_line({SERVERS[k].executable: SERVERS[k].path() for k in keys})


def version_line(programs: dict[str, Path]) -> str:
    """``exe VERSION`` for each (executable, path), then wrk's and Python's."""
    parts = []
    for exe, path in programs.items():
        flag = "-v" if exe == "nginx" else "--version"  # nginx prints it on stderr
        try:
            done = subprocess.run([str(path), flag], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"(\d+\.\d+[\w.]*)", done.stdout + done.stderr)
        parts.append(f"{exe} {found.group(1) if found else '?'}")
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+\.\d+\.\d+)", wrk)
    parts.append(f"wrk {found.group(1) if found else '?'}")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def granian_has_blocking_threads() -> bool:
    return "--blocking-threads" in help_text("granian")


# --- report --------------------------------------------------------------------------------


def baseline_of(keys: list[str]) -> str:
    return BASELINE if BASELINE in keys else keys[0]


def table_rows(results: dict, keys: list[str], args) -> list[list[str]]:
    """One row per (scenario, connections, server) that has results, in command-line order."""
    baseline = baseline_of(keys)
    rows = []
    for scenario in args.scenarios:
        for conns in args.connections:
            runs = {k: results.get((scenario, conns, k)) for k in keys}
            base_rps = median([r.rps for r in runs[baseline]]) if runs[baseline] else None
            for key in (k for k in keys if runs[k]):
                rps = median([r.rps for r in runs[key]])
                rows.append(
                    [
                        scenario,
                        str(conns),
                        SERVERS[key].name,
                        f"{rps:.0f}",
                        f"{median([r.p50 for r in runs[key]]) * 1e3:.2f}",
                        f"{median([r.p99 for r in runs[key]]) * 1e3:.2f}",
                        str(sum(r.errors for r in runs[key])),
                        f"{median([r.rss_mib for r in runs[key]]):.1f}",
                        f"{median([r.cpu_us for r in runs[key]]):.1f}",
                        f"{rps / base_rps:.2f}" if base_rps else "-",
                    ]
                )
    return rows


def conditions(keys: list[str], args, about: str) -> list[str]:
    """The lines above the table: what a reader needs to compare the rows fairly."""
    keepalive = "keep-alive" if args.keepalive else "Connection: close (no keep-alive)"
    lines = [
        f"{args.workers} workers per server; wrk -t{args.wrk_threads} "
        f"--timeout {args.timeout:g}s, {keepalive}; "
        f"median of {args.rounds} x {args.duration:g}s runs per row; errors = non-2xx + "
        f"socket errors, summed over the runs; RSS = mean over the workers near the end of a "
        f"run; {os.cpu_count()} cores shared by wrk and the servers."
    ]
    if "gunicorn-gthread" in keys:
        lines.append(f"gunicorn gthread runs --threads {GTHREAD_THREADS} in every scenario.")
    threaded = [SERVERS[k].name for k in keys if k in args.threaded]
    if threaded and any(SCENARIOS[s].threaded for s in args.scenarios):
        lines.append(
            f"For sleep, {' and '.join(threaded)} run {args.threads} threads per worker "
            f"(--threads / --blocking-threads); the other servers run their defaults."
        )
    return [*lines, f"{about}."]


# Columns of `table_rows` that hold words (scenario, server); the others are numbers.
TEXT_COLUMNS = (0, 2)


def render(header: list[str], rows: list[list[str]], markdown: bool, text=TEXT_COLUMNS):
    """The table, as Markdown or as aligned text; numbers aligned right."""
    if markdown:
        align = ["---" if i in text else "---:" for i in range(len(header))]
        return ["| " + " | ".join(row) + " |" for row in [header, align, *rows]]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i in text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        )
        for row in [header, *rows]
    ]


def print_report(results: dict, keys: list[str], failures: dict, args, about: str) -> None:
    header = ["scenario", "conns", "server", "req/s", "p50 ms", "p99 ms", "errors"]
    header += ["RSS/worker MiB", "CPU us/req", f"x {SERVERS[baseline_of(keys)].name}"]
    print()
    print("\n".join(conditions(keys, args, about)) + "\n")
    print("\n".join(render(header, table_rows(results, keys, args), args.markdown)))
    if failures:
        print()
    for what, why in failures.items():
        print(f"- skipped {what}: {why}" if args.markdown else f"skipped {what}: {why}")


def target_row(target: Target, results: dict, conns: int) -> list[str] | None:
    """The ratio of the rounds' ratios (each round's pair ran minutes apart at most), its
    range, and the same for CPU time per response (peer's over subject's: higher is better
    for the subject, as for req/s), which other jobs on the machine move less."""
    mine = results.get((target.scenario, conns, target.subject))
    theirs = results.get((target.scenario, conns, target.peer))
    if not mine or not theirs:
        return None
    peer = {r.round: r for r in theirs}
    pairs = [(r, peer[r.round]) for r in mine if r.round in peer]
    if not pairs:
        return None
    rps = [a.rps / b.rps for a, b in pairs]
    cpu = [b.cpu_us / a.cpu_us for a, b in pairs if a.cpu_us > 0]
    ratio = median(rps)
    return [
        target.scenario,
        f"{SERVERS[target.subject].name} / {SERVERS[target.peer].name}",
        f"{median([a.rps for a, _ in pairs]):.0f}",
        f"{median([b.rps for _, b in pairs]):.0f}",
        f"{ratio:.2f}",
        f"{min(rps):.2f}-{max(rps):.2f}",
        f"{median(cpu):.2f}" if cpu else "-",
        f"{min(cpu):.2f}-{max(cpu):.2f}" if cpu else "-",
        f">= {target.goal:g}",
        "yes" if ratio >= target.goal else "NO",
    ]


def print_targets(results: dict, args) -> None:
    header = ["target", "ratio of", "req/s", "peer req/s", "ratio", "rounds"]
    header += ["CPU ratio", "rounds", "goal", "met"]
    rows = []
    for target in (t for t in TARGETS if t.scenario in args.targets):
        for conns in args.connections:
            row = target_row(target, results, conns)
            rows.append(row or [target.scenario, f"{target.subject} / {target.peer}", *"-" * 8])
    print()
    print("\n".join(render(header, rows, args.markdown, text=(0, 1))))


# --- main ----------------------------------------------------------------------------------


def comma_list(choices):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return items

    return parse


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated integers, e.g. 50,256") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError("at least 2 connections")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = arg_parser(__doc__)
    add = parser.add_argument
    add("--servers", type=comma_list(list(SERVERS)), default=list(SERVERS), help="[all]")
    add("--scenarios", type=comma_list(list(SCENARIOS)), default=list(SCENARIOS), help="[all]")
    add("--connections", type=positive_ints, default=[50, 256], help="wrk -c values [50,256]")
    add("--workers", type=int, default=2, help="worker processes per server [2]")
    add("--threads", type=int, default=8, help="threads for the sleep app [8]")
    add("--duration", type=int, default=10, help="seconds per wrk run [10]")
    add("--rounds", type=int, default=3, help="rounds; the table shows the median [3]")
    add("--warmup", type=int, default=1, help="seconds of wrk after each start, 0: none [1]")
    add("--timeout", type=int, default=10, help="wrk --timeout in seconds [10]")
    add("--wrk-threads", type=int, default=2, help="wrk -t [2; 1 with --targets]")
    add("--no-keepalive", dest="keepalive", action="store_false", help="Connection: close")
    add("--markdown", action="store_true", help="print the table as Markdown")
    add(
        "--targets",
        type=comma_list(TARGET_SCENARIOS),
        nargs="?",
        const=TARGET_SCENARIOS,
        help=f"issue 10's ratios ({','.join(TARGET_SCENARIOS)}; all when bare): their servers"
        " only, -c50, wrk -t1, rounds of 5 s unless given",
    )
    args = parser.parse_args(argv)
    if args.targets:
        explicit = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        args.scenarios = args.targets
        args.servers = list(
            dict.fromkeys(
                k for t in TARGETS if t.scenario in args.targets for k in (t.subject, t.peer)
            )
        )
        if "--connections" not in explicit:
            args.connections = [50]
        if "--wrk-threads" not in explicit:
            args.wrk_threads = 1
        if "--duration" not in explicit:
            args.duration = 5
        if "--rounds" not in explicit:
            args.rounds = 5
    if min(args.workers, args.threads, args.rounds, args.duration, args.timeout) < 1:
        parser.error("--workers, --threads, --rounds, --duration and --timeout must be positive")
    args.connections = list(dict.fromkeys(args.connections))
    return args


def servers_for(scenario: str, keys: list[str], args) -> list[str]:
    """Every server, or with --targets the ones its targets compare."""
    if not args.targets:
        return keys
    wanted = {k for t in TARGETS if t.scenario == scenario for k in (t.subject, t.peer)}
    return [k for k in keys if k in wanted]


def run_rounds(keys: list[str], failures: dict[str, str], args) -> dict:
    """Every round runs every server on every scenario; the server order rotates per round.

    A server that fails on a scenario is skipped on it for the remaining rounds.
    """
    results: dict[tuple[str, int, str], list[Result]] = {}
    for rnd in range(args.rounds):
        for scenario in args.scenarios:
            these = servers_for(scenario, keys, args)
            order = these[rnd % len(these) :] + these[: rnd % len(these)]
            for key in order:
                what = f"{SERVERS[key].name} on {scenario}"
                if what in failures:
                    continue
                try:
                    measured = measure(key, scenario, args)
                except ServerFailed as e:
                    failures[what] = str(e)
                    print(f"round {rnd + 1}: {what}: FAILED: {e}", file=sys.stderr)
                    continue
                for conns, r in measured.items():
                    r.round = rnd
                    results.setdefault((scenario, conns, key), []).append(r)
                    print(
                        f"round {rnd + 1}/{args.rounds}: {scenario:<5} -c{conns:<4} "
                        f"{SERVERS[key].name:<17}{r.rps:>9.0f} req/s  p99 {r.p99 * 1e3:8.2f} ms"
                        f"  errors {r.errors:<6} RSS {r.rss_mib:.1f} MiB",
                        file=sys.stderr,
                    )
    return results


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("benches/load.py needs wrk, from Debian: apt-get install -y wrk")
    # A TERM to the harness unwinds through the `with Running` blocks, which stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = {SERVERS[k].name: why for k, why in ensure_installed(args.servers).items()}
    keys = [k for k in args.servers if SERVERS[k].name not in failures]
    if not keys:
        sys.exit("no server to benchmark: " + "; ".join(failures.values()))
    args.threaded = {k for k in THREADED if k in keys}
    if "granian" in keys and not granian_has_blocking_threads():
        args.threaded.discard("granian")
    about = versions(keys)
    results = run_rounds(keys, failures, args)
    print_report(results, keys, failures, args, about)
    if args.targets:
        print_targets(results, args)


if __name__ == "__main__":
    main()
