"""Server hooks with gunicorn's names and arities, and the objects they are handed.

The objects stand for gunicorn's: ``server`` its ``Arbiter`` (``pid``, ``cfg``,
``address``, ``LISTENERS``, ``WORKERS``, ``num_workers``, ``proc_name``, ``log``...),
``worker`` its ``Worker`` (``pid``, ``ppid``, ``age``, ``nr``, ``app``, ``wsgi``,
``sockets``, ``alive``, ``booted``, ``timeout``...), ``req`` its ``Request``. As in
gunicorn they live on: ``server`` is one object in the master, and the ``worker`` a
``pre_fork`` hook sees is the one ``post_fork`` sees in the child (inherited through the
fork) and ``child_exit`` in the master, so attributes a hook sets on either reach the
next hook. The Rust side calls :func:`call` with plain values.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse

from ferricorn import _config, _ferricorn, _settings


class Log:
    """gunicorn's logger methods, writing to ferricorn's error log (%-style arguments)."""

    def _write(self, level: str, msg, args) -> None:
        text = str(msg) % args if args else str(msg)
        _ferricorn.log(level, text)

    def debug(self, msg, *args, **_kw) -> None:
        self._write("debug", msg, args)

    def info(self, msg, *args, **_kw) -> None:
        self._write("info", msg, args)

    def warning(self, msg, *args, **_kw) -> None:
        self._write("warning", msg, args)

    warn = warning

    def error(self, msg, *args, **_kw) -> None:
        self._write("error", msg, args)

    def critical(self, msg, *args, **_kw) -> None:
        self._write("critical", msg, args)

    def exception(self, msg, *args, **_kw) -> None:
        import traceback

        self._write("error", f"{msg}\n{traceback.format_exc().rstrip()}", args)

    def reopen_files(self) -> None:
        """USR1 reopens ferricorn's log files; nothing to do from a hook."""

    def close_on_exec(self) -> None:
        """ferricorn's log descriptors are close-on-exec already."""


class _BorrowedSocket(socket.socket):
    """A listening socket the master owns, seen from Python: never closed by the garbage
    collector (Rust closes it)."""

    def __del__(self) -> None:
        self.detach()


class Listener:
    """One of ``server.LISTENERS`` (gunicorn's ``TCPSocket``, ``UnixSocket``): ``str()``
    is ``http://HOST:PORT`` or ``unix:PATH``; ``getsockname()`` and ``fileno()`` answer
    without a socket object; other attributes are the socket's."""

    def __init__(self, fd: int, name, text: str):
        self._fd = fd
        self._name = tuple(name) if isinstance(name, list) else name
        self._text = text
        self._sock = None

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__

    def fileno(self) -> int:
        return self._fd

    def getsockname(self):
        return self._name

    @property
    def sock(self) -> socket.socket:
        if self._sock is None:
            self._sock = _BorrowedSocket(fileno=self._fd)
        return self._sock

    def __getattr__(self, name):
        return getattr(self.sock, name)


class App:
    """``server.app`` and ``worker.app``: gunicorn's ``WSGIApplication`` as hooks use it
    (``cfg``, ``wsgi()``, ``app_uri``)."""

    def __init__(self):
        self.callable = None

    @property
    def cfg(self) -> _settings.Config:
        return server.cfg

    @property
    def app_uri(self) -> str:
        return server.cfg.default_proc_name

    def wsgi(self):
        """The WSGI callable, once this process has imported it."""
        return self.callable


class Server:
    """What hooks see of the master (gunicorn's ``Arbiter``)."""

    LISTENERS: list = []
    WORKERS: dict = {}

    def __init__(self):
        self.pid = os.getpid()
        self.num_workers = 0
        self.cfg = _settings.Config({}, {})
        self.log = Log()
        self.app = App()
        self.LISTENERS = []
        self.WORKERS = {}
        self.worker_age = 0
        self.master_name = "Master"
        self.master_pid = 0
        self.reexec_pid = 0
        self.systemd = False
        self.pidfile = None
        self.START_CTX = {"args": [sys.executable] + sys.argv, "cwd": os.getcwd()}

    @property
    def address(self) -> list:
        return self.cfg.address

    @property
    def proc_name(self) -> str:
        return self.cfg.proc_name

    @property
    def timeout(self) -> int:
        return self.cfg.timeout

    @property
    def worker_class(self):
        return Worker

    def __repr__(self) -> str:
        return f"<ferricorn master {self.pid}>"


class Worker:
    """What hooks see of a worker (gunicorn's ``Worker``). ``pid`` is ``"[booting]"``
    until forked, as in gunicorn; ``nr`` counts the requests this worker has handled."""

    def __init__(self, age: int):
        self.age = age
        self.pid = "[booting]"
        self.ppid = server.pid
        self.sockets = list(server.LISTENERS)
        self.app = server.app
        self.cfg = server.cfg
        self.log = server.log
        self.timeout = server.cfg.timeout / 2.0
        self.nr = 0
        self.booted = False
        self.aborted = False
        self.alive = True
        jitter = server.cfg.max_requests_jitter
        limit = server.cfg.max_requests
        self.max_requests = limit + jitter if limit > 0 else sys.maxsize

    def __str__(self) -> str:
        return f"<Worker {self.pid}>"


def _split_uri(uri: str):
    """gunicorn's ``split_request_uri``: a target starting with ``//`` is a path."""
    if uri.startswith("//"):
        parts = urllib.parse.urlsplit("." + uri)
        return parts._replace(path=parts.path[1:])
    return urllib.parse.urlsplit(uri)


def _peer(environ: dict):
    """gunicorn's ``peer_addr``: the address ``accept()`` gave, ``(ip, port)`` on TCP."""
    host, port = environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")
    if not port:
        return host or ""
    if ":" in host:
        return (host, int(port), 0, 0)
    return (host, int(port))


class Request:
    """The request as hooks see it (gunicorn's ``Request``), built from the environ:
    ``method``, ``uri`` (as sent), ``path``, ``query``, ``fragment`` (split from ``uri``),
    ``version``, ``scheme``, ``headers`` (upper-case names), ``body`` (``wsgi.input``:
    what a hook reads there the app no longer gets, as in gunicorn), ``remote_addr`` and
    ``peer_addr``."""

    def __init__(self, environ: dict):
        self.method = environ.get("REQUEST_METHOD")
        self.uri = environ.get("RAW_URI")
        parts = _split_uri(self.uri or "")
        self.path = parts.path or ""
        self.query = parts.query or ""
        self.fragment = parts.fragment or ""
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        self.version = tuple(int(p) for p in protocol.split("/")[-1].split("."))
        self.scheme = environ.get("wsgi.url_scheme")
        self.headers = [
            (key[5:].replace("_", "-"), value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                self.headers.append((key.replace("_", "-"), environ[key]))
        self.trailers: list = []
        self.body = environ.get("wsgi.input")
        self.peer_addr = _peer(environ)
        self.remote_addr = self.peer_addr


class Response:
    """The response as ``post_request`` sees it."""

    def __init__(self, status: str, headers: list, sent: int):
        self.status = status
        self.status_code = int(status.split()[0]) if status else None
        self.headers = headers
        self.sent = sent
        self.response_length = sent


server = Server()
#: The worker this process is, once forked.
current: Worker | None = None
#: The worker being forked: ``pre_fork``'s, which the child's ``post_fork`` gets.
_forking: Worker | None = None


def defined() -> list[str]:
    """The hooks the config file defines."""
    return sorted(_config.hooks)


def set_config(values: dict, num_workers: int) -> None:
    server.cfg = _settings.Config(values, _config.hooks)
    server.num_workers = num_workers


def set_listeners(listeners: list) -> None:
    """The master's sockets, once bound: ``(fd, getsockname(), str())`` each."""
    server.LISTENERS = [Listener(*listener) for listener in listeners]


def _worker_now() -> Worker:
    """This process's worker, its request count brought up to date."""
    global current
    if current is None:
        current = Worker(0)
        current.pid = os.getpid()
    current.nr = _ferricorn.requests_handled()
    return current


def forked(pid: int) -> None:
    """In the master, after a fork: the worker ``pre_fork`` saw is now ``pid``."""
    global _forking
    worker, _forking = _forking or Worker(server.worker_age), None
    worker.pid = pid
    server.WORKERS[pid] = worker


def call(name: str, args: tuple) -> None:
    """A hook by name with gunicorn's arguments, built from plain values: master hooks
    get ``num_workers`` first, ``nworkers_changed`` ``(new, old)``; worker ones
    ``(pid, age)`` (``pid`` 0 before the fork), ``post_worker_init`` the app too."""
    global current, _forking
    if name in ("on_starting", "on_reload", "when_ready", "pre_exec", "on_exit"):
        server.num_workers = args[0]
        if name == "on_exit":
            server.LISTENERS = []
        _config.call_hook(name, server)
    elif name == "nworkers_changed":
        server.num_workers = args[0]
        _config.call_hook(name, server, args[0], args[1])
    elif name == "pre_fork":
        server.worker_age = args[1]
        _forking = Worker(args[1])
        _config.call_hook(name, server, _forking)
    elif name == "post_fork":
        current, _forking = _forking or Worker(args[1]), None
        current.pid = args[0]
        _config.call_hook(name, server, current)
    elif name == "child_exit":
        worker = server.WORKERS.pop(args[0], None)
        if worker is None:
            worker = Worker(args[1])
            worker.pid = args[0]
        _config.call_hook(name, server, worker)
    elif name == "worker_exit":
        worker = _worker_now()
        worker.alive = False
        _config.call_hook(name, server, worker)
    elif name == "post_worker_init":
        worker = _worker_now()
        if len(args) > 2:
            worker.wsgi = worker.app.callable = args[2]
        _config.call_hook(name, worker)
        worker.booted = True
    elif name in ("worker_int", "worker_abort"):
        worker = _worker_now()
        worker.alive = False
        worker.aborted = name == "worker_abort"
        _config.call_hook(name, worker)
    elif name == "pre_request":
        worker = _worker_now()
        worker.nr -= 1  # gunicorn counts the request after this hook
        _config.call_hook(name, worker, Request(args[0]))
    elif name == "post_request":
        environ, status, headers, sent = args
        worker = _worker_now()
        _config.call_hook(name, worker, Request(environ), environ, Response(status, headers, sent))
