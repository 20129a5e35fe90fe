"""One WSGI app with a route per behaviour the end-to-end tests probe.

Routing is on the first segment of PATH_INFO (``/file/...`` goes to ``file``), so the app also
works behind a SCRIPT_NAME. Arguments come from the query string. Side effects the test has to
observe from outside the worker (``close()`` calls) are written as JSON files into the
directory named by the ``FERRICORN_TEST_STATE`` environment variable of the server.
"""

import hashlib
import io
import json
import os
import sys
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

from apps import CHUNK, pattern, pattern_chunks
from apps.echo import app as echo_app

ROUTES = {}
TEXT = [("Content-Type", "text/plain")]


def route(name):
    def register(func):
        ROUTES[name] = func
        return func

    return register


def app(environ, start_response):
    name = environ.get("PATH_INFO", "").split("/")[1:2]
    handler = ROUTES.get(name[0] if name else "")
    if handler is None:
        start_response("404 Not Found", TEXT)
        return [b"no such route\n"]
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    return handler(environ, start_response, query)


def _json(start_response, doc, status="200 OK"):
    out = json.dumps(doc).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


def _state_path(name):
    return os.path.join(os.environ["FERRICORN_TEST_STATE"], name)


_validated_echo = validator(echo_app)


@route("validated")
def validated(environ, start_response, query):
    return _validated_echo(environ, start_response)


@route("hello")
def hello(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "6")])
    return [b"hello\n"]


@route("seq")
def seq(environ, start_response, query):
    """Answers with its query string, so that pipelined answers can be matched to requests."""
    body = environ.get("QUERY_STRING", "").encode("latin-1")
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


@route("pid")
def pid(environ, start_response, query):
    return _json(start_response, {"pid": os.getpid()})


@route("environ")
def environ_(environ, start_response, query):
    wsgi = {
        "version": list(environ["wsgi.version"]),
        "version_is_tuple": type(environ["wsgi.version"]) is tuple,
        "url_scheme": environ.get("wsgi.url_scheme"),
        "multithread": environ.get("wsgi.multithread"),
        "multiprocess": environ.get("wsgi.multiprocess"),
        "run_once": environ.get("wsgi.run_once"),
        "input_terminated": environ.get("wsgi.input_terminated"),
    }
    doc = {
        "is_dict": type(environ) is dict,
        "str": {k: v for k, v in environ.items() if isinstance(v, str)},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "wsgi": wsgi,
    }
    return _json(start_response, doc)


@route("input")
def input_(environ, start_response, query):
    """Reads wsgi.input with one method and reports the pieces it returned."""
    stream = environ["wsgi.input"]
    mode = query["mode"]
    pieces = []
    if mode == "read":
        pieces = [stream.read()]
    elif mode == "read_n":
        while chunk := stream.read(7):
            pieces.append(chunk)
    elif mode == "readline":
        while line := stream.readline():
            pieces.append(line)
    elif mode == "readline_n":
        while line := stream.readline(5):
            pieces.append(line)
    elif mode == "readlines_hint":
        first = stream.readlines(10)
        pieces = [first, stream.readlines()]
        doc = {
            "calls": [[p.hex() for p in call] for call in pieces],
            "types": sorted({type(p).__name__ for call in pieces for p in call}),
        }
        return _json(start_response, doc)
    elif mode == "iter":
        pieces = list(stream)
    doc = {"pieces": [p.hex() for p in pieces], "types": sorted({type(p).__name__ for p in pieces})}
    return _json(start_response, doc)


@route("stream")
def stream(environ, start_response, query):
    """A generator body with no Content-Length: the server picks the framing."""
    count = int(query.get("n", "5"))
    start_response("200 OK", TEXT)
    return (f"part {i}\n".encode() for i in range(count))


@route("write")
def write(environ, start_response, query):
    write = start_response("200 OK", TEXT)
    write(b"from ")
    write(b"write, ")
    return [b"then ", b"iterable"]


@route("file")
def file_(environ, start_response, query):
    handle = open(query["path"], "rb")
    if "seek" in query:
        handle.seek(int(query["seek"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in query:
        headers.append(("Content-Length", query["cl"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](handle, CHUNK)


@route("bytesio")
def bytesio(environ, start_response, query):
    """file_wrapper over an object without a usable fileno(): the server must read blocks."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(pattern(int(query["n"]))), 8192)


@route("sr-twice")
def sr_twice(environ, start_response, query):
    start_response("200 OK", TEXT)
    start_response("201 Created", TEXT)  # no exc_info: an error per PEP 3333
    return [b"should not be seen"]


@route("exc-info-late")
def exc_info_late(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "100")])

    def body():
        yield b"first part;"
        try:
            raise ValueError("late failure")
        except ValueError:
            # Headers are out: PEP 3333 says start_response re-raises exc_info.
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never sent"

    return body()


@route("error-before")
def error_before(environ, start_response, query):
    raise RuntimeError(f"boom before headers {query['token']}")


@route("error-after")
def error_after(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "1000")])

    def body():
        yield b"x" * 10
        raise RuntimeError(f"boom after headers {query['token']}")

    return body()


class Tracked:
    """An iterable body that records its close() call, for ok, error and disconnect runs."""

    def __init__(self, token, mode):
        self.token = token
        self.mode = mode
        self.sent = 0
        self.exhausted = False
        self.deadline = time.monotonic() + 20

    def __iter__(self):
        return self

    def __next__(self):
        if self.mode == "ok" and self.sent == 3:
            self.exhausted = True
            raise StopIteration
        if self.mode == "error" and self.sent == 1:
            raise RuntimeError("tracked body failed")
        if self.mode == "disconnect" and time.monotonic() > self.deadline:
            self.exhausted = True  # the server never noticed the client left
            raise StopIteration
        self.sent += 1
        return b"y" * (CHUNK if self.mode == "disconnect" else 10)

    def close(self):
        record = {"closed": True, "sent": self.sent, "exhausted": self.exhausted}
        with open(_state_path(f"close-{self.token}.json"), "w") as out:
            json.dump(record, out)


@route("close-track")
def close_track(environ, start_response, query):
    start_response("200 OK", TEXT)
    return Tracked(query["token"], query["mode"])


@route("head")
def head(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "11"), ("X-Head-Test", "kept")])
    return [b"hello world"]


@route("status")
def status(environ, start_response, query):
    code = query["code"]
    start_response(f"{code} Whatever", [("X-Status-Test", code)])
    return [b""]


@route("bad-header-value")
def bad_header_value(environ, start_response, query):
    start_response("200 OK", TEXT + [("X-Injected", "a\r\nX-Evil: 1")])
    return [b"should not be seen"]


@route("bad-header-name")
def bad_header_name(environ, start_response, query):
    start_response("200 OK", TEXT + [("Bad Name:", "value")])
    return [b"should not be seen"]


@route("hop-by-hop")
def hop_by_hop(environ, start_response, query):
    headers = TEXT + [
        ("Content-Length", "5"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-End-To-End", "kept"),
    ]
    start_response("200 OK", headers)
    return [b"hello"]


@route("custom-server")
def custom_server(environ, start_response, query):
    start_response("200 OK", TEXT + [("Server", "my-app/1.0"), ("Content-Length", "2")])
    return [b"ok"]


@route("cl-more")
def cl_more(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"hello", b" world, too long"]


@route("cl-less")
def cl_less(environ, start_response, query):
    start_response("200 OK", TEXT + [("Content-Length", "20")])
    return [b"short"]


@route("continue")
def continue_(environ, start_response, query):
    body = environ["wsgi.input"].read() if query.get("read") == "1" else b"(not read)"
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


@route("short-body")
def short_body(environ, start_response, query):
    """The client sends less than its Content-Length and half-closes."""
    import ferricorn

    exported = getattr(ferricorn, "ClientDisconnected", None)
    try:
        data = environ["wsgi.input"].read()
        doc = {"raised": False, "length": len(data)}
    except Exception as exc:
        doc = {
            "raised": True,
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "is_oserror": isinstance(exc, OSError),
            "is_exported_class": exported is not None and isinstance(exc, exported),
        }
    return _json(start_response, doc)


@route("errors")
def errors(environ, start_response, query):
    stream = environ["wsgi.errors"]
    stream.write(f"wsgi.errors says {query['token']}\n")
    stream.flush()
    start_response("200 OK", TEXT + [("Content-Length", "2")])
    return [b"ok"]


@route("sleep")
def sleep(environ, start_response, query):
    """Announces itself on wsgi.errors, so a test knows the request is in flight."""
    stream = environ["wsgi.errors"]
    stream.write(f"sleep start {query.get('token', '')}\n")
    stream.flush()
    time.sleep(float(query["s"]))
    start_response("200 OK", TEXT + [("Content-Length", "6")])
    return [b"slept\n"]


@route("getenv")
def getenv(environ, start_response, query):
    return _json(start_response, {"value": os.environ.get(query["key"])})


@route("sha256")
def sha256(environ, start_response, query):
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        total += len(chunk)
    return _json(start_response, {"sha256": digest.hexdigest(), "length": total})


@route("download")
def download(environ, start_response, query):
    size = int(query["n"])
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return pattern_chunks(size)
