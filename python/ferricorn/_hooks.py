"""Server hooks with gunicorn's names and arities, and the objects they are handed.

Real hooks use a small part of gunicorn's `Arbiter`, `Worker` and request objects:
``server.pid``, ``server.num_workers``, ``server.cfg.bind``, ``server.log.info(...)``,
``worker.pid``, ``worker.age``, ``req.method``, ``req.path``, ``req.headers``... Those are
what these classes provide. The Rust side calls :func:`call` with plain values.
"""

from __future__ import annotations

import os

from ferricorn import _config, _ferricorn


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


class Settings:
    """``cfg``: every setting by its gunicorn name, as merged from all sources."""

    def __init__(self, values: dict):
        self.__dict__.update(values)

    def __getattr__(self, name):
        # gunicorn settings ferricorn lacks read as None rather than failing a hook.
        return None

    @property
    def settings(self) -> dict:
        return dict(self.__dict__)


class Server:
    """What hooks see of the master (gunicorn's ``Arbiter``)."""

    def __init__(self):
        self.pid = os.getpid()
        self.num_workers = 0
        self.cfg = Settings({})
        self.log = Log()
        self.WORKERS: dict = {}

    def __repr__(self) -> str:
        return f"<ferricorn master {self.pid}>"


class Worker:
    """What hooks see of a worker."""

    def __init__(self, pid: int, age: int):
        self.pid = pid
        self.ppid = server.pid
        self.age = age
        self.cfg = server.cfg
        self.log = server.log
        self.alive = True
        self.booted = False

    def __repr__(self) -> str:
        return f"<ferricorn worker {self.pid}>"


class Request:
    """The request as hooks see it (gunicorn's ``Request``), built from the environ."""

    def __init__(self, environ: dict):
        self.method = environ.get("REQUEST_METHOD")
        self.uri = environ.get("RAW_URI")
        self.path = environ.get("PATH_INFO")
        self.query = environ.get("QUERY_STRING")
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


def defined() -> list[str]:
    """The hooks the config file defines."""
    return sorted(_config.hooks)


def set_config(values: dict, num_workers: int) -> None:
    server.cfg = Settings(values)
    server.num_workers = num_workers


def call(name: str, args: tuple) -> None:
    """A hook by name with gunicorn's arguments, built from plain values:
    master hooks get ``num_workers`` first; worker ones ``(pid, age)`` pairs."""
    global current
    if name in ("on_starting", "on_reload", "when_ready", "pre_exec", "on_exit"):
        server.num_workers = args[0]
        _config.call_hook(name, server)
    elif name == "nworkers_changed":
        server.num_workers = args[0]
        _config.call_hook(name, server, args[0], args[1])
    elif name in ("pre_fork", "child_exit"):
        worker = server.WORKERS.pop(args[0], None) or Worker(*args)
        if name == "pre_fork":
            worker.pid = None
        _config.call_hook(name, server, worker)
    elif name == "post_fork":
        current = Worker(*args)
        server.WORKERS[current.pid] = current
        _config.call_hook(name, server, current)
    elif name == "worker_exit":
        current = current or Worker(*args)
        current.alive = False
        _config.call_hook(name, server, current)
    elif name in ("post_worker_init", "worker_int", "worker_abort"):
        current = current or Worker(*args)
        current.booted = True
        _config.call_hook(name, current)
    elif name == "pre_request":
        current = current or Worker(os.getpid(), 0)
        _config.call_hook(name, current, Request(args[0]))
    elif name == "post_request":
        current = current or Worker(os.getpid(), 0)
        environ, status, headers, sent = args
        _config.call_hook(name, current, Request(environ), environ, Response(status, headers, sent))
