"""End-to-end helpers: run the real ferricorn executable and talk HTTP to it over sockets.

- ``Server`` starts ferricorn on port 0, learns the port from the master's
  ``Listening at: http://127.0.0.1:PORT (PID)`` line, keeps its stderr in a buffer that tests
  can search, and always stops it (TERM, then KILL of its process group after a deadline).
- ``exchange`` sends raw bytes (whole or in pieces), reads until the server closes and
  parses the response; ``parse_response`` and ``decode_chunked`` do the HTTP/1.x framing.
- ``Client`` is one connection that reads responses one at a time by their framing, for
  keep-alive and pipelining (the async worker does not close after a response); ``fetch``
  is one request on a fresh ``Client``.
- ``worker_class`` (a fixture) and ``WORKER_CLASSES`` run a test on each worker class.
- Nothing sleeps to wait for something: every wait polls its condition under a deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SOCKET_TIMEOUT = 10.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# Bound for a ferricorn run that must exit by itself (flags, load failures, checks).
RUN_DEADLINE = 15.0

# Under pytest-xdist (`-n`), each worker process has a HOME of its own: servers started
# at once would otherwise share the control socket's default path
# (~/.gunicorn/gunicorn.ctl).
if _xdist := os.environ.get("PYTEST_XDIST_WORKER"):
    _home = Path(os.environ.get("TMPDIR", "/tmp")) / f"ferricorn-tests-home-{_xdist}"
    _home.mkdir(exist_ok=True)
    os.environ["HOME"] = str(_home)

# The worker classes that every end-to-end behaviour common to both is checked on.
WORKER_CLASSES = ["sync", "async"]

LISTENING_RE = re.compile(r"Listening at: (\S+) \((\d+)\)")
BOOTING_RE = re.compile(r"\[(\d+)\] \[INFO\] Booting worker with pid: (\d+)")

# Lines for the end of the run (corpus counts, RSS figures), shown even without ``-s``:
# fixed lines, and callables that build theirs once every test has run.
SUMMARY_LINES: list[str] = []
SUMMARY_PROVIDERS: list = []


def ferricorn_command() -> list[str]:
    """The console script next to the running interpreter, so the tests use the venv's."""
    script = Path(sys.executable).parent / "ferricorn"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ferricorn"]


def gunicorn_command() -> list[str]:
    """The live gunicorn 27 of requirements-dev.txt, next to the running interpreter: the peer
    that behaviour shared with gunicorn is compared against in the same test."""
    return [str(Path(sys.executable).parent / "gunicorn")]


def uvicorn_command() -> list[str]:
    """uvicorn (requirements-dev.txt), the ASGI peer test_asgi_apps.py is proved against."""
    return [str(Path(sys.executable).parent / "uvicorn")]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.01):
    """Polls ``predicate`` until it returns something truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def cmdline(pid: int) -> str:
    """A process's command line (its title, once ferricorn set one), NULs as spaces."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def read_pid(path: Path) -> int | None:
    """The pid a pidfile holds, or None while it is missing or partial."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def child_pids(pid: int) -> list[int]:
    """Children of ``pid``, from /proc (every thread's list, to be safe)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.update(int(word) for word in text.split())
    return sorted(found)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = re.search(r"^State:\s+(\S)", status, re.M)
    return bool(state) and state.group(1) not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


def free_port() -> int:
    """A port that was free a moment ago, for the few tests that must name one (PORT=)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


class Server:
    """One ferricorn master started by a test, with its output captured."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | str = TESTS_DIR,
        command: list[str] | None = None,
    ):
        self.argv = (command or ferricorn_command()) + list(args)
        self.worker_class = _worker_class(args)
        full_env = dict(os.environ)
        full_env.pop("PORT", None)
        full_env.pop("WEB_CONCURRENCY", None)
        full_env.pop("SCRIPT_NAME", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self._lines: list[str] = []
        self._stdout: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(cwd),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: teardown can reap its workers
        )
        self.pid = self.proc.pid
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        stream.close()

    # --- output -------------------------------------------------------------------------

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._lines)

    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self._stdout)

    def log_mark(self) -> int:
        """Position in stderr; pass it to ``wait_log``/``log_since`` to look at later lines."""
        with self._cond:
            return len(self._lines)

    def log_since(self, mark: int) -> str:
        with self._cond:
            return "".join(self._lines[mark:])

    def wait_log(self, pattern: str, timeout: float = SOCKET_TIMEOUT, since: int = 0):
        """Waits for a stderr line matching the regex ``pattern``; returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[since:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "".join(self._lines[-40:])
                    raise AssertionError(f"no log line matching {pattern!r}; stderr tail:\n{tail}")
                self._cond.wait(min(left, 0.1))

    # --- addresses ------------------------------------------------------------------------

    def listening(self) -> list[str]:
        """Every address from the ``Listening at:`` lines (gunicorn joins several with ",")."""
        return [a for m in LISTENING_RE.finditer(self.stderr) for a in m.group(1).split(",")]

    @property
    def ports(self) -> list[int]:
        tcp = ("http://", "https://")  # https: --certfile
        return [int(a.rsplit(":", 1)[1]) for a in self.listening() if a.startswith(tcp)]

    @property
    def port(self) -> int:
        return self.ports[0]

    def wait_ready(self, binds: int = 1, workers: int = 1, timeout: float = START_TIMEOUT):
        """Waits for ``binds`` Listening lines, ``workers`` booted workers, and a connect."""

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"ferricorn exited with {self.proc.returncode} before listening:\n{self.stderr}"
                )
            return len(self.listening()) >= binds

        wait_for(listening, timeout, "the Listening at: lines")
        wait_for(
            lambda: len(self.booted_workers()) >= workers or self.proc.poll() is not None,
            timeout,
            f"{workers} Booting worker lines",
        )
        for address in self.listening():
            wait_for(lambda a=address: _can_connect(a), timeout, f"a connect to {address}")
        return self

    def booted_workers(self) -> list[int]:
        return [int(m.group(2)) for m in BOOTING_RE.finditer(self.stderr)]

    def worker_pids(self) -> list[int]:
        return [pid for pid in child_pids(self.pid) if pid_alive(pid)]

    # --- lifecycle ------------------------------------------------------------------------

    def leftovers(self, timeout: float = 5.0) -> list[int]:
        """After the master has exited: processes of its group still alive after ``timeout``."""
        deadline = time.monotonic() + timeout
        while group_members(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return group_members(self.pid)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"ferricorn did not exit within {timeout:g}s; stderr:\n{self.stderr}"
            ) from None

    def stop(self) -> int | None:
        """TERM, then KILL of the whole process group after a deadline; always reaps."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the group this test created, workers too
        self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode

    # --- requests -------------------------------------------------------------------------

    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def exchange(self, raw: bytes, **kwargs) -> Exchange:
        return exchange(self.address(), [raw], **kwargs)

    def get(self, target: str, headers: list[tuple[str, str]] | None = None, **kwargs):
        """One GET on a fresh connection, read by its framing (keep-alive or not)."""
        return fetch(self.address(), build_request("GET", target, headers), **kwargs)


def _worker_class(args: list[str]) -> str:
    """The worker class the arguments select, by its canonical name (gthread is async)."""
    name = "sync"
    for i, arg in enumerate(args):
        if arg in ("-k", "--worker-class") and i + 1 < len(args):
            name = args[i + 1]
        elif arg.startswith("--worker-class="):
            name = arg.split("=", 1)[1]
    return "async" if name == "gthread" else name


def _can_connect(address: str) -> bool:
    try:
        if address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(1)
            sock.connect(address[len("unix:") :])
        else:
            host, port = address.split("://", 1)[1].rsplit(":", 1)
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")
            sock = socket.create_connection((host, int(port)), timeout=1)
    except OSError:
        return False
    sock.close()
    return True


def start_server(
    app: str,
    *extra: str,
    workers: int = 1,
    worker_class: str | None = None,
    binds: tuple[str, ...] = ("127.0.0.1:0",),
    log_level: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | str = TESTS_DIR,
    command: list[str] | None = None,
) -> Server:
    """Starts ferricorn on the given binds and waits until it accepts connections."""
    args: list[str] = []
    for bind in binds:
        args += ["--bind", bind]
    args += ["--workers", str(workers)]
    if worker_class:
        args += ["-k", worker_class]
    if log_level:
        args += ["--log-level", log_level]
    args += list(extra) + [app]
    server = Server(args, env=env, cwd=cwd, command=command)
    try:
        server.wait_ready(binds=len(binds), workers=workers)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(params=WORKER_CLASSES)
def worker_class(request) -> str:
    """Runs the test once per worker class; pass it on as ``worker_class=``."""
    return request.param


@pytest.fixture
def server_factory():
    """Starts servers for one test (``start_server``'s arguments); stops them all after."""
    started: list[Server] = []

    def start(app: str, *extra: str, **kwargs) -> Server:
        server = start_server(app, *extra, **kwargs)
        started.append(server)
        return server

    def spawn(args: list[str], **kwargs) -> Server:
        """Starts without waiting, for tests of startup failures."""
        server = Server(args, **kwargs)
        started.append(server)
        return server

    start.spawn = spawn
    yield start
    for server in started:
        server.stop()


@contextlib.contextmanager
def running(app: str, *extra: str, **kwargs):
    """``start_server`` as a context manager, for module-scoped fixtures."""
    server = start_server(app, *extra, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def run_cli(*args, timeout=RUN_DEADLINE, env=None, cwd=TESTS_DIR):
    """Runs ferricorn to completion (for flags and load failures that must exit by themselves).

    A run that outlives ``timeout`` is killed with its whole process group and fails the test.
    """
    full_env = dict(os.environ)
    full_env.pop("PORT", None)
    full_env.pop("WEB_CONCURRENCY", None)
    full_env.update(env or {})
    proc = subprocess.Popen(
        ferricorn_command() + list(args),
        cwd=str(cwd),
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"ferricorn {' '.join(args)} still running after {timeout:g}s:\n{stderr}"
        ) from None
    wait_for(lambda: not group_members(proc.pid), 5, "no process left behind", interval=0.02)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# --- HTTP over raw sockets ----------------------------------------------------------------


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw_body: bytes  # every byte after the header block, framing included
    body: bytes  # the decoded body (chunked framing removed, cut at Content-Length)
    complete: bool  # framing says the body arrived whole (terminal chunk, or CL bytes)
    interim: list[int] = field(default_factory=list)  # 1xx status codes seen first
    after: str | None = None  # what the connection did next, when known: see connection_after

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Exchange:
    raw: bytes  # everything the server sent before closing
    closed: str  # "eof" or "reset"
    sent_all: bool  # False when the server answered or closed before the last byte went out
    response: Response | None  # None when the server closed without a status line


def decode_chunked(data: bytes) -> tuple[bytes, bool]:
    """Removes chunked framing; returns the payload and whether the last-chunk arrived."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(data[pos:eol].split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            return bytes(out), data.find(b"\r\n\r\n", pos - 2) >= 0
        out += data[pos : pos + size]
        if len(data) < pos + size + 2:
            return bytes(out), False
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise ValueError(f"chunk not followed by CRLF at offset {pos + size}")
        pos += size + 2


def parse_response(data: bytes, head_request: bool = False) -> Response | None:
    """Parses one response (after any 1xx) from everything the server sent."""
    interim: list[int] = []
    while True:
        if not data:
            return None
        end = data.find(b"\r\n\r\n")
        if end < 0:
            raise ValueError(f"no end of header block in {data[:200]!r}")
        head = data[:end].decode("latin-1").split("\r\n")
        version, _, rest = head[0].partition(" ")
        status_text, _, reason = rest.partition(" ")
        status = int(status_text)
        headers = []
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"bad header line {line!r}")
            headers.append((name, value.strip(" \t")))
        data = data[end + 4 :]
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    response = Response(version, status, reason, headers, data, data, True, interim)
    if head_request or status in (204, 304):
        return response
    te = response.header("Transfer-Encoding")
    cl = response.header("Content-Length")
    if te is not None and te.lower() == "chunked":
        response.body, response.complete = decode_chunked(data)
    elif cl is not None:
        length = int(cl)
        response.body = data[:length]
        response.complete = len(data) >= length
    return response


def read_until_close(sock: socket.socket, timeout: float = SOCKET_TIMEOUT) -> tuple[bytes, str]:
    """Everything the peer sends until it closes; ("...", "eof" or "reset")."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        except socket.timeout:
            got = b"".join(chunks)
            raise AssertionError(
                f"server did not close within {timeout:g}s; got {len(got)} bytes: {got[:300]!r}"
            ) from None
        if not chunk:
            return b"".join(chunks), "eof"
        chunks.append(chunk)


def send_pieces(sock: socket.socket, pieces, pace: float = 0.0) -> bool:
    """Sends pieces in order; stops early (returns False) once the server has answered."""
    for piece in pieces:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return False
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return False
        if pace:
            time.sleep(pace)  # pacing, so each piece reaches the server on its own
    return True


def connect(address, timeout: float = SOCKET_TIMEOUT) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(
    address,
    pieces,
    *,
    half_close: bool = False,
    head_request: bool = False,
    pace: float = 0.0,
    timeout: float = SOCKET_TIMEOUT,
) -> Exchange:
    """Opens a connection, sends ``pieces``, reads until close and parses the response."""
    with connect(address, timeout) as sock:
        sent_all = send_pieces(sock, pieces, pace)
        if half_close and sent_all:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        raw, closed = read_until_close(sock, timeout)
    return Exchange(raw, closed, sent_all, parse_response(raw, head_request))


CLOSE_DELIMITED = -1  # a response whose body runs until the server closes


def _chunked_end(data: bytes | bytearray, pos: int) -> int | None:
    """Offset just past a chunked body starting at ``pos``; None while it is incomplete."""
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(data[pos:eol]).split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:  # the last-chunk, then trailer fields, then an empty line
            if len(data) < pos + 2:
                return None
            if data[pos : pos + 2] == b"\r\n":
                return pos + 2
            end = data.find(b"\r\n\r\n", pos)
            return None if end < 0 else end + 4
        if len(data) < pos + size + 2:
            return None
        pos += size + 2


def response_end(data: bytes | bytearray, pos: int = 0, head_request: bool = False) -> int | None:
    """Where the response starting at ``pos`` ends (any 1xx before it included).

    None while more bytes are needed; ``CLOSE_DELIMITED`` when only the server's close ends it.
    """
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return None
        lines = bytes(data[pos:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        pos = end + 4
        if not 100 <= status < 200:
            break
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip(" \t")
    if head_request or status in (204, 304):
        return pos
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _chunked_end(data, pos)
    if "content-length" in headers:
        length = int(headers["content-length"])
        return pos + length if len(data) >= pos + length else None
    return CLOSE_DELIMITED


class Client:
    """One connection that reads responses one at a time by their framing.

    Unlike ``exchange`` it does not need the server to close, so it can follow a keep-alive
    connection through several (pipelined) requests. ``closed`` is set ("eof" or "reset")
    once the server has closed its side.
    """

    def __init__(self, address, timeout: float = SOCKET_TIMEOUT):
        self.sock = connect(address, timeout)
        self.timeout = timeout
        self.buffer = bytearray()
        self.pos = 0  # start of the unread bytes in ``buffer``
        self.closed: str | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Sends all of ``data``; False when the server had closed or reset the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _fill(self, deadline: float, what: str) -> None:
        """Reads more bytes into the buffer, or notes the close; fails at ``deadline``."""
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.closed = "reset"
            return
        except socket.timeout:
            pending = bytes(self.buffer[self.pos : self.pos + 300])
            raise AssertionError(f"timed out waiting for a {what}; unread: {pending!r}") from None
        if not chunk:
            self.closed = "eof"
            return
        if self.pos > (1 << 20):  # drop what was read, so the buffer does not grow forever
            del self.buffer[: self.pos]
            self.pos = 0
        self.buffer += chunk

    def read_response(
        self, head_request: bool = False, timeout: float | None = None
    ) -> Response | None:
        """The next response; None when the server closed before sending a byte of it.

        A response the server cut short (it closed mid-body) comes back with
        ``complete`` False; a close-delimited one is read until the close.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            end = response_end(self.buffer, self.pos, head_request)
            if end is not None and end != CLOSE_DELIMITED:
                break
            if self.closed:
                end = len(self.buffer)
                break
            self._fill(deadline, "whole response")
        raw = bytes(self.buffer[self.pos : end])
        self.pos = end
        return parse_response(raw, head_request)

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Reads until ``marker`` is among the unread bytes, which it returns without
        consuming them (``read_response`` still gets the whole response). For a streamed
        response: whether a part arrived before the app was let to send the next."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buffer[self.pos :]:
            if self.closed:
                unread = bytes(self.buffer[self.pos : self.pos + 300])
                raise AssertionError(f"closed ({self.closed}) before {marker!r}: {unread!r}")
            self._fill(deadline, repr(marker))
        return bytes(self.buffer[self.pos :])

    def pending(self) -> bool:
        """True when bytes (or the close) are waiting to be read, without blocking."""
        if self.pos < len(self.buffer) or self.closed:
            return True
        poller = select.poll()  # not select(): a test may hold more than 1024 descriptors
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def read_until_close(self, timeout: float | None = None) -> bytes:
        """Every byte still to come, until the server closes; fails if it keeps it open."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            self._fill(deadline, "close from the server")
        rest = bytes(self.buffer[self.pos :])
        self.pos = len(self.buffer)
        return rest


def connection_tokens(response: Response) -> list[str]:
    return [t.strip().lower() for v in response.header_all("Connection") for t in v.split(",")]


def connection_after(client: Client, response: Response) -> str:
    """What the server did with the connection after ``response``; sets ``response.after``.

    - "closed": it closed, having said ``Connection: close`` (or having cut the response
      short), and sent nothing more;
    - "reused": it kept the connection, and a further request (``/hello`` of apps.cases, with
      ``Connection: close``) is answered next, not after stray bytes;
    - "dropped": it closed after a whole response without having said it would.

    The client's connection is finished afterwards.
    """
    if client.closed or "close" in connection_tokens(response):
        extra = client.read_until_close()
        assert extra == b"", f"bytes after the response it closed on: {extra[:300]!r}"
        response.after = "closed"
        return response.after
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    follow = client.read_response()
    if follow is None:
        response.after = "dropped"
        return response.after
    assert (follow.status, follow.body) == (200, b"hello\n"), follow
    extra = client.read_until_close()
    assert extra == b"", f"bytes after the follow-up response: {extra[:300]!r}"
    response.after = "reused"
    return response.after


def fetch(address, raw: bytes, *, head_request: bool = False, timeout: float = SOCKET_TIMEOUT):
    """Sends one request on a fresh connection and returns the first response to it.

    It does not wait for the server to close: with keep-alive it would not.
    """
    with Client(address, timeout) as client:
        client.send(raw)
        return client.read_response(head_request)


def build_request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(*parts: bytes) -> bytes:
    """Chunked framing of ``parts``, with the last-chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


# --- reporting ----------------------------------------------------------------------------


def _figures() -> list[str]:
    """This process's figures: the lines tests added and what the providers make."""
    lines = list(SUMMARY_LINES)
    for provider in SUMMARY_PROVIDERS:
        lines += provider()
    return lines


#: Under pytest-xdist, the figures each worker process sent back as it finished.
_WORKERS_FIGURES: list[str] = []


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller prints them
        workeroutput["figures"] = _figures()


try:
    import xdist  # noqa: F401 - only its hook below needs it
except ImportError:
    pass
else:

    def pytest_testnodedown(node, error):
        _WORKERS_FIGURES.extend(getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter):
    lines = _WORKERS_FIGURES + _figures()
    if lines:
        terminalreporter.section("ferricorn end-to-end figures")
        for line in lines:
            terminalreporter.write_line(line)
