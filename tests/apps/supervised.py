"""The app the supervision tests run (reloads, signals, worker limits, process settings).

It imports nothing outside the standard library, so a test can copy it into its own
directory, edit ``BODY`` and run it from there as ``supervised:app``. Routes:

- ``/``: ``BODY``; the reload tests edit that line to see which code a worker runs.
- ``/pid?s=``: the worker's pid, its parent's, and the pid that imported this module,
  after sleeping ``s`` seconds (0 by default) so that concurrent requests spread out.
- ``/sleep?s=&token=``: announces ``sleep start TOKEN`` on wsgi.errors, then sleeps.
- ``/alloc?mb=&s=``: allocates ``mb`` MiB (touched, so it counts in RSS) and keeps it,
  announces ``alloc done TOKEN`` on wsgi.errors, sleeps ``s`` seconds, then answers.
- ``/errors?msg=``: writes ``msg`` to wsgi.errors, which goes to the error log.
- ``/extra``: the file named by ``SUPERVISED_EXTRA``, as read when this module was imported.

``asgi`` serves ``/`` and ``/pid`` the same way for ``-k asgi`` (``supervised:asgi``).
"""

import asyncio
import json
import os
import time
from urllib.parse import parse_qs

BODY = b"supervised body, first version\n"
IMPORT_PID = os.getpid()
HELD = []  # allocations that /alloc keeps alive for the worker's lifetime
TEXT = [("Content-Type", "text/plain")]


def _read_extra():
    path = os.environ.get("SUPERVISED_EXTRA")
    if not path:
        return b""
    with open(path, "rb") as extra:
        return extra.read()


EXTRA = _read_extra()


def _text(start_response, body, status="200 OK"):
    start_response(status, TEXT + [("Content-Length", str(len(body)))])
    return [body]


def _announce(environ, message):
    stream = environ["wsgi.errors"]
    stream.write(message + "\n")
    stream.flush()


def app(environ, start_response):
    route = environ.get("PATH_INFO", "/")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "/":
        return _text(start_response, BODY)
    if route == "/pid":
        time.sleep(float(query.get("s", "0")))
        doc = {"pid": os.getpid(), "ppid": os.getppid(), "import_pid": IMPORT_PID}
        return _text(start_response, json.dumps(doc).encode())
    if route == "/sleep":
        _announce(environ, f"sleep start {query.get('token', '')}")
        time.sleep(float(query["s"]))
        return _text(start_response, b"slept\n")
    if route == "/alloc":
        size = int(query["mb"]) << 20
        HELD.append(b"\x01" * size)  # written byte by byte, unlike calloc'd zero pages
        _announce(environ, f"alloc done {query.get('token', '')}")
        time.sleep(float(query.get("s", "0")))
        return _text(start_response, f"allocated {query['mb']} MiB\n".encode())
    if route == "/errors":
        _announce(environ, query["msg"])
        return _text(start_response, json.dumps({"pid": os.getpid()}).encode())
    if route == "/extra":
        return _text(start_response, EXTRA)
    return _text(start_response, b"no such route\n", "404 Not Found")


async def asgi(scope, receive, send):
    """``/`` and ``/pid?s=`` for the asgi worker, as ``app`` serves them."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["path"] == "/pid":
        await asyncio.sleep(float(query.get("s", "0")))
        doc = {"pid": os.getpid(), "ppid": os.getppid(), "import_pid": IMPORT_PID}
        body, status = json.dumps(doc).encode(), 200
    elif scope["path"] == "/":
        body, status = BODY, 200
    else:
        body, status = b"no such route\n", 404
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
