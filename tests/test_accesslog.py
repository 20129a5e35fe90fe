"""Access log lines, byte for byte against a live gunicorn.

The same app (tests/apps/accesslog_app.py) runs under gunicorn (sync worker, one worker) and
under ferricorn (each worker class), both with ``--access-logfile``; each gets the same raw
requests, one per connection, and the two files must hold the same lines. Only the atoms that
depend on the clock or the process are normalised before the comparison: ``t``, ``T``,
``M``, ``D``, ``L`` and ``p``. Each side's values for those are checked on their own instead:
``t`` has the CLF layout and is close to now, the four durations are one duration in four
units, and ``p`` is the worker's pid.

Two formats: gunicorn's default (no ``--access-logformat`` at all) and one that uses every
atom, request headers (``{h}i``), response headers (``{h}o``), environ keys (``{k}e``), with
names in either case, and atoms that are missing (logged as ``-``). The default format is also
checked on stdout (``--access-logfile -``), and for the 500 the server sends itself when the
app raises. gunicorn runs once per format and set of requests (a module-scoped fixture).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import (
    SOCKET_TIMEOUT,
    SUMMARY_PROVIDERS,
    exchange,
    gunicorn_command,
    start_server,
    wait_for,
)

APP = "apps.accesslog_app:app"
GUNICORN = gunicorn_command()
HOST = "accesslog.test"  # without a port: the same bytes to both servers, whose ports differ


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def raw_request(method, target, headers=(), body=None, version="1.1") -> bytes:
    """One request, byte for byte the same to both servers: a fixed Host, then ``headers``,
    then Content-Length for a body, then ``Connection: close``."""
    lines = [f"{method} {target} HTTP/{version}", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# (label, request) in the order they are sent; one access log line each.
REQUESTS = [
    ("query", raw_request("GET", "/page/one?x=1&y=%22two%22&empty=")),
    (
        "referer+agent",
        raw_request(
            "GET",
            "/page/two",
            [("Referer", "http://ref.test/from?a=1"), ("User-Agent", "agent/1.0 (test; x)")],
        ),
    ),
    (
        "post",
        raw_request(
            "POST",
            "/form?id=7",
            [("Content-Type", "application/x-www-form-urlencoded")],
            body=b"name=value&other=%22x%22",
        ),
    ),
    ("basic-auth", raw_request("GET", "/page/auth", [("Authorization", _basic("alice:secret"))])),
    (
        "quotes",
        raw_request(
            "GET",
            "/page/quotes",
            [
                ("Authorization", _basic('we"ird:pw')),
                ("User-Agent", 'agent "quoted" back\\slash'),
                ("Referer", 'http://ref.test/"q"'),
            ],
        ),
    ),
    ("bearer-auth", raw_request("GET", "/page/bearer", [("Authorization", "Bearer abc.def")])),
    ("not-found", raw_request("GET", "/nowhere/x?y=1")),
    ("stream", raw_request("GET", "/stream", [("User-Agent", "streamer")])),
    ("stream-http1.0", raw_request("GET", "/stream", version="1.0")),
    ("head", raw_request("HEAD", "/page/head?h=1")),
    ("no-content", raw_request("GET", "/nocontent")),
    ("encoded-path", raw_request("GET", "/page/%7Euser%20x/a%2Fb?q=%20%25")),
    ("repeated-header", raw_request("GET", "/page/dup", [("X-Dup", "first"), ("X-Dup", "2nd")])),
    ("obs-text", raw_request("GET", "/page/latin1", [("User-Agent", "caf\xe9")])),
    (
        "empty-agent",
        raw_request("GET", "/page/e", [("User-Agent", ""), ("Authorization", "basic Ym9iOg==")]),
    ),
    ("quote-in-target", raw_request("GET", '/page/q?a="b"')),
]

# The app raises before start_response, so the server answers 500 on its own. gunicorn logs
# such a line from its error path, where the environ holds no request headers (``f`` and
# ``a`` would be ``-`` even when sent, so none are sent here) and ``b`` is 0.
APP_ERROR_REQUESTS = [("app-error", raw_request("GET", "/boom?x=1"))]

REQUEST_SETS = {"main": REQUESTS, "app-error": APP_ERROR_REQUESTS}

# Every atom gunicorn has, each as ``name=value`` between SEP, so that a field can be told
# apart from its neighbours, then a literal ``%%``. Header and environ names appear in both
# cases (gunicorn lowercases them); ``{x-absent}i``, ``{x-absent}o``, ``{absent}e`` and
# ``nosuchatom`` are never set and log as ``-``. ``{h}o`` sees the app's headers only:
# gunicorn logs ``-`` for the Server, Date, Connection and Transfer-Encoding it adds.
ATOMS = [
    *"h l u t r s m U q H b B f a T M D L p".split(),
    "{host}i",
    "{User-Agent}i",
    "{referer}i",
    "{authorization}i",
    "{content-type}i",
    "{X-Dup}i",
    "{x-absent}i",
    "{content-type}o",
    "{Content-Length}o",
    "{x-app}o",
    "{x-multi}o",
    "{x-absent}o",
    "{server}o",
    "{date}o",
    "{connection}o",
    "{transfer-encoding}o",
    "{request_method}e",
    "{PATH_INFO}e",
    "{query_string}e",
    "{raw_uri}e",
    "{server_protocol}e",
    "{server_name}e",
    "{script_name}e",
    "{content_length}e",
    "{content_type}e",
    "{http_user_agent}e",
    "{http_x_dup}e",
    "{http_host}e",
    "{remote_addr}e",
    "{wsgi.url_scheme}e",
    "{absent}e",
    "nosuchatom",
]
SEP = " |"
EVERY_ATOM_FORMAT = SEP.join(f"{atom}=%({atom})s" for atom in ATOMS) + SEP + "100%%"
LINE_END = SEP + "100%"  # how EVERY_ATOM_FORMAT ends once formatted

# The clock- and process-dependent atoms, with the layout each value must have.
CLF_TIME = r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]"
VOLATILE = {
    "t": CLF_TIME,
    "T": r"\d+",
    "M": r"\d+",
    "D": r"\d+",
    "L": r"\d+\.\d{6}",
    "p": r"<\d+>",
}

# Line pairs compared, by (format, worker class), for the end-of-run summary.
COMPARED: dict[tuple[str, str], tuple[int, int]] = {}


def _summary() -> list[str]:
    if not COMPARED:
        return []
    pairs = sum(n for n, _ in COMPARED.values())
    same = sum(s for _, s in COMPARED.values())
    runs = ", ".join(f"{fmt}/{wc}: {s}/{n}" for (fmt, wc), (n, s) in sorted(COMPARED.items()))
    return [f"access log vs gunicorn: {same}/{pairs} line pairs identical ({runs})"]


SUMMARY_PROVIDERS.append(_summary)


# --- checking one side's lines -------------------------------------------------------------


def check_time(value: str, what: str) -> None:
    """A CLF stamp (``[26/Nov/2026:00:06:02 +0000]``) within a minute of now."""
    stamp = datetime.strptime(value, "[%d/%b/%Y:%H:%M:%S %z]")
    skew = abs(datetime.now(stamp.tzinfo) - stamp)
    assert skew < timedelta(minutes=1), f"{what}: t={value} is {skew} away from now"


def check_durations(fields: dict[str, str], what: str) -> None:
    """T, M, D and L are one duration: whole seconds, milliseconds, microseconds, and
    ``seconds.micros``, each truncated."""
    micros = int(fields["D"])
    assert int(fields["M"]) == micros // 1000, f"{what}: M vs D in {fields}"
    assert int(fields["T"]) == micros // 1_000_000, f"{what}: T vs D in {fields}"
    seconds, rest = divmod(micros, 1_000_000)
    assert fields["L"] == f"{seconds}.{rest:06d}", f"{what}: L vs D in {fields}"
    assert micros < SOCKET_TIMEOUT * 1_000_000, f"{what}: D={micros} is longer than a request"


def normalise_default(line: str, what: str) -> str:
    """The default format's one volatile atom, ``t``, replaced by ``[TIME]``."""
    stamps = re.findall(CLF_TIME, line)
    assert len(stamps) == 1, f"{what}: not one CLF time stamp in {line!r}"
    check_time(stamps[0], what)
    return line.replace(stamps[0], "[TIME]")


def normalise_every_atom(line: str, what: str, worker_pids: list[int]) -> str:
    """The every-atom line with each volatile atom's value replaced by its name in capitals
    (``t=<T>``), after checking its layout and what it says."""
    assert line.endswith(LINE_END), f"{what}: the line does not end as the format: {line!r}"
    fields = line[: -len(LINE_END)].split(SEP)
    assert len(fields) == len(ATOMS), f"{what}: {len(fields)} fields, not {len(ATOMS)}: {line!r}"
    volatile = {}
    for i, (atom, field) in enumerate(zip(ATOMS, fields)):
        assert field.startswith(f"{atom}="), f"{what}: field {i} is not {atom}=: {line!r}"
        if atom in VOLATILE:
            value = field[len(atom) + 1 :]
            assert re.fullmatch(VOLATILE[atom], value), f"{what}: {atom}={value!r}"
            volatile[atom] = value
            fields[i] = f"{atom}=<{atom.upper()}>"
    check_time(volatile["t"], what)
    check_durations(volatile, what)
    pids = [f"<{pid}>" for pid in worker_pids]
    assert volatile["p"] in pids, f"{what}: p={volatile['p']}, the workers are {pids}"
    return SEP.join(fields) + LINE_END


# --- running one server ------------------------------------------------------------------


def log_lines(path: Path) -> list[str]:
    """The complete lines in the access log so far (bytes kept as they are, via
    surrogateescape, so that a line that is not UTF-8 still compares byte for byte)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "surrogateescape").split("\n")[:-1]


def run_requests(server, read_lines, name: str, requests) -> list[str]:
    """Sends each request on its own connection, waiting after each for its log line; then
    stops the server and returns the lines (checking that no stray one came)."""
    for i, (label, raw) in enumerate(requests):
        result = exchange(server.address(), [raw], head_request=raw.startswith(b"HEAD "))
        assert result.response is not None, f"{name}: no response to {label}: {result.raw!r}"
        wait_for(
            lambda n=i + 1: len(read_lines()) >= n,
            SOCKET_TIMEOUT,
            f"{name}'s access log line for {label} (line {i + 1})",
        )
    server.stop()
    lines = read_lines()
    assert len(lines) == len(requests), f"{name}: {len(lines)} lines for {len(requests)}"
    return lines


def format_args(fmt: str) -> list[str]:
    return [] if fmt == "default" else ["--access-logformat", EVERY_ATOM_FORMAT]


def normalise(lines, fmt: str, name: str, worker_pids: list[int], requests) -> list[str]:
    out = []
    for (label, _), line in zip(requests, lines):
        what = f"{name}, {label}"
        if fmt == "default":
            out.append(normalise_default(line, what))
        else:
            out.append(normalise_every_atom(line, what, worker_pids))
    return out


@pytest.fixture(scope="module")
def gunicorn_lines(tmp_path_factory):
    """gunicorn's normalised lines for a format and a set of requests, one gunicorn run each."""
    cache: dict[tuple[str, str], list[str]] = {}

    def lines_for(fmt: str, requests: str = "main") -> list[str]:
        if (fmt, requests) not in cache:
            logfile = tmp_path_factory.mktemp(f"gunicorn-{fmt}-{requests}") / "access.log"
            server = start_server(
                APP,
                "--no-control-socket",
                "--access-logfile",
                str(logfile),
                *format_args(fmt),
                command=GUNICORN,
                # gunicorn's FileHandler encodes with the locale's encoding: pin it to UTF-8.
                env={"PYTHONUTF8": "1"},
            )
            try:
                sent = REQUEST_SETS[requests]
                raw = run_requests(server, lambda: log_lines(logfile), "gunicorn", sent)
            finally:
                server.stop()
            pids = server.booted_workers()
            cache[(fmt, requests)] = normalise(raw, fmt, "gunicorn", pids, sent)
        return cache[(fmt, requests)]

    return lines_for


def ferricorn_lines(server_factory, worker_class, fmt, requests, logfile) -> list[str]:
    """ferricorn's normalised lines; ``logfile`` None logs to stdout (``--access-logfile -``)."""
    sent = REQUEST_SETS[requests]
    target = "-" if logfile is None else str(logfile)
    server = server_factory(
        APP, "--access-logfile", target, *format_args(fmt), worker_class=worker_class
    )
    if logfile is None:
        raw = run_requests(server, lambda: server.stdout.split("\n")[:-1], "ferricorn", sent)
    else:
        raw = run_requests(server, lambda: log_lines(logfile), "ferricorn", sent)
    return normalise(raw, fmt, "ferricorn", server.booted_workers(), sent)


def compare(what: str, worker_class: str, expected, got, requests: str = "main") -> None:
    """Line by line, naming the request of each line that differs."""
    diffs = []
    for (label, raw), want, have in zip(REQUEST_SETS[requests], expected, got):
        if want != have:
            diffs.append(f"{label}: {raw!r}\n  gunicorn:  {want!r}\n  ferricorn: {have!r}")
    COMPARED[(what, worker_class)] = (len(expected), len(expected) - len(diffs))
    assert not diffs, f"{len(diffs)} of {len(expected)} lines differ:\n" + "\n".join(diffs)


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["default", "every-atom"])
def test_access_log_file_matches_gunicorn(
    fmt, worker_class, server_factory, tmp_path, gunicorn_lines
):
    expected = gunicorn_lines(fmt)
    got = ferricorn_lines(server_factory, worker_class, fmt, "main", tmp_path / "access.log")
    compare(fmt, worker_class, expected, got)


def test_access_log_on_stdout_matches_gunicorn(worker_class, server_factory, gunicorn_lines):
    """``--access-logfile -``: the same lines, on stdout."""
    expected = gunicorn_lines("default")
    got = ferricorn_lines(server_factory, worker_class, "default", "main", None)
    compare("stdout", worker_class, expected, got)


def test_app_error_is_logged_as_gunicorn_does(
    worker_class, server_factory, tmp_path, gunicorn_lines
):
    """An app that raises before start_response: the server's own 500 gets a line too."""
    expected = gunicorn_lines("default", "app-error")
    got = ferricorn_lines(
        server_factory, worker_class, "default", "app-error", tmp_path / "access.log"
    )
    compare("app-error", worker_class, expected, got, "app-error")
