"""The round-robin speed runs that benches/tls_speed.py and benches/asgi_speed.py share.

Both scripts start every server once, then run each round's figures (one client command
each) on every server, the server order rotating from round to round so that the shared
machine's noise falls on all of them; each run counts the CPU the server and the client
spent. What differs (the servers, the clients, how a client's output reads) stays in the
scripts; this module has:

- ``parser`` / ``check_options``: the options both take, and their checks.
- ``pinned``: ``--pin``'s taskset prefix; ``build_client``: cargo builds a Rust client.
- ``run_client``: one client command with its CPU accounting and failure checks.
- ``run_rounds``: the warm-up and the rotating rounds, with a progress line per run.
- ``run_cells``, ``ratio_cells``, ``client_bound``, ``print_tables``: the report.

A run is any object with ``rate``, ``errors``, ``server_us``, ``client_us`` and ``round``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import load
from serving import Running, ServerFailed, arg_parser, median

# A client this busy (cores over its limit) may be what limits the figure.
CLIENT_BUSY = 0.9
# How long a client may overrun --duration before the run counts as failed.
CLIENT_GRACE = 30.0


# --- options ---------------------------------------------------------------------------


def parser(doc: str, servers: list[str], clients: str, rounds: int) -> argparse.ArgumentParser:
    """The options both scripts take; ``clients`` says what ``--connections`` also counts
    (the script's own client's), ``rounds`` is the default of ``--rounds``."""
    out = arg_parser(doc)
    add = out.add_argument
    add("--servers", type=load.comma_list(servers), default=servers, help="[all]")
    add("--workers", type=int, default=2, help="worker processes per server [2]")
    add("--connections", type=int, default=50, help=f"wrk -c, and {clients} [50]")
    add("--wrk-threads", type=int, default=1, help="wrk -t [1]")
    add("--duration", type=int, default=5, help="seconds per run [5]")
    add("--rounds", type=int, default=rounds, help=f"rounds; the table shows the median [{rounds}]")
    add("--pin", action="store_true", help="servers on CPU 0, clients on CPU 1")
    add("--markdown", action="store_true", help="print the tables as Markdown")
    add("--json", type=Path, help="write every round's figures to this file")
    return out


def check_options(parser: argparse.ArgumentParser, args, *positive: str) -> None:
    """--workers, --rounds, --duration and the script's ``positive`` ones at least 1;
    --connections at least --wrk-threads."""
    names = ["workers", *positive, "rounds", "duration"]
    if min(getattr(args, name) for name in names) < 1:
        flags = [f"--{name.replace('_', '-')}" for name in names]
        parser.error(f"{', '.join(flags[:-1])} and {flags[-1]} must be positive")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")


def pinned(args, cpu: str) -> list[str]:
    """``--pin``: servers on CPU 0, the clients on CPU 1, so neither takes the other's core."""
    return ["taskset", "-c", cpu] if args.pin else []


def build_client(crate: Path, target: Path, script: str) -> None:
    """``cargo build --release`` of the client crate ``crate`` into ``target``."""
    if not shutil.which("cargo"):
        sys.exit(f"{script} builds {crate.name} with cargo, which is missing")
    cmd = ["cargo", "build", "--release", "--quiet", "--manifest-path"]
    cmd += [str(crate / "Cargo.toml"), "--target-dir", str(target)]
    subprocess.run(cmd, check=True)


# --- one run ---------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client(cmd: list[str], server: Running, duration: int) -> tuple[str, float, float]:
    """Runs one client command against ``server``: its output, and the CPU seconds the
    server (all its processes) and the client spent meanwhile. A client that fails or
    overruns, or a server that died, raises ServerFailed."""
    server_before, client_before = server.cpu_seconds(), children_cpu()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + CLIENT_GRACE)
    except subprocess.TimeoutExpired:
        raise ServerFailed(f"{cmd[0]} ran past {duration + CLIENT_GRACE:g}s") from None
    server_cpu, client_cpu = server.cpu_seconds() - server_before, children_cpu() - client_before
    server.check_alive()
    if done.returncode != 0:
        raise ServerFailed(f"{cmd[0]} exited with {done.returncode}: {done.stderr[-300:]!r}")
    return done.stdout, server_cpu, client_cpu


def run_rounds(
    keys: list[str],
    figures: tuple[str, ...],
    names: dict[str, str],
    measure: Callable[[str, str], object],
    warm_up: Callable[[str, str], list[str]],
    args,
    failures: dict,
) -> dict[tuple[str, str], list]:
    """A second of ``warm_up(key, figure)``'s command on every server, then ``args.rounds``
    rounds of ``measure(key, figure)`` for every figure and server, the server order
    rotating per round. A failed run is in ``failures`` and its figure is not run again."""
    for key in keys:
        for figure in figures:
            subprocess.run(warm_up(key, figure), capture_output=True, check=False)
    name_width, figure_width = max(map(len, names.values())) + 1, max(map(len, figures))
    results: dict[tuple[str, str], list] = {}
    for rnd in range(args.rounds):
        for key in keys[rnd % len(keys) :] + keys[: rnd % len(keys)]:
            for figure in figures:
                what = f"{names[key]} {figure}"
                if what in failures:
                    continue
                try:
                    run = measure(key, figure)
                except ServerFailed as e:
                    failures[what] = str(e)
                    print(f"round {rnd + 1}: {what}: FAILED: {e}", file=sys.stderr)
                    continue
                run.round = rnd
                results.setdefault((key, figure), []).append(run)
                print(
                    f"round {rnd + 1}/{args.rounds}: {names[key]:<{name_width}} "
                    f"{figure:<{figure_width}} {run.rate:>9.0f}/s  server {run.server_us:7.1f} us"
                    f"  client {run.client_us:6.1f} us  errors {run.errors}",
                    file=sys.stderr,
                )
    return results


# --- report ----------------------------------------------------------------------------


def client_cores(run) -> float:
    """How many cores the client kept busy: near its thread count (wrk) or the cores it
    has, the figure is the client's, not the server's."""
    return run.client_us * run.rate / 1e6


def run_cells(runs: list) -> list[str]:
    """A server's figure over the rounds: median rate, range, server and client CPU per
    response, the client's cores, errors."""
    rates = [r.rate for r in runs]
    return [
        f"{median(rates):.0f}",
        f"{min(rates):.0f}-{max(rates):.0f}",
        f"{median([r.server_us for r in runs]):.1f}",
        f"{median([r.client_us for r in runs]):.1f}",
        f"{median([client_cores(r) for r in runs]):.2f}",
        str(sum(r.errors for r in runs)),
    ]


def ratio_cells(mine: list, theirs: list) -> tuple[float, list[str]]:
    """``mine`` over ``theirs``, paired by round (the two ran seconds apart): the median
    ratio, and the cells: that ratio, their range, and the CPU ratio (their server CPU per
    response over mine: above 1, mine spends less)."""
    by_round = {r.round: r for r in theirs}
    pairs = [(a, by_round[a.round]) for a in mine if a.round in by_round]
    rates = [a.rate / b.rate for a, b in pairs]
    cpu = [b.server_us / a.server_us for a, b in pairs if a.server_us > 0]
    ratio = median(rates)
    spread = f"{min(rates):.2f}-{max(rates):.2f}"
    return ratio, [f"{ratio:.2f}", spread, f"{median(cpu):.2f}" if cpu else "-"]


def client_bound(results: dict, names: dict[str, str], wrk_figure: str, args) -> list[str]:
    """The runs whose client was near its limit: wrk's threads (``wrk_figure``), or CPU 1
    when pinned."""
    notes = []
    for (key, figure), runs in results.items():
        limit = args.wrk_threads if figure == wrk_figure else (1 if args.pin else None)
        busy = median([client_cores(r) for r in runs])
        if limit and busy >= CLIENT_BUSY * limit:
            notes.append(
                f"{names[key]} {figure}: the client kept {busy:.2f} of {limit} cores "
                f"busy, so the figure may be the client's"
                + (" (try --wrk-threads 2)" if figure == wrk_figure else "")
            )
    return notes


def print_tables(about: str, table: tuple, ratios: tuple, failures: dict, notes, args) -> None:
    """The conditions line, the table and the ratio table (each ``(header, rows,
    text_columns)``; no ratio table without rows), the skipped servers and the notes."""
    print(f"\n{about}\n")
    print("\n".join(load.render(*table[:2], args.markdown, table[2])))
    if ratios[1]:
        print()
        print("\n".join(load.render(*ratios[:2], args.markdown, ratios[2])))
    for what, why in failures.items():
        print(f"- skipped {what}: {why}" if args.markdown else f"skipped {what}: {why}")
    for note in notes:
        print(f"- {note}" if args.markdown else note)
