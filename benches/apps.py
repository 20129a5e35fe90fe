"""The WSGI apps that ``benches/load.py``, ``leak.py``, ``slow.py`` and ``slow_readers.py``
serve, one per scenario.

Every server loads them the same way, as ``benches.apps:NAME`` from the repository root, and
answers on any path. Each is as small as its scenario allows, so that the figures measure the
server, not the app.
"""

import time

HELLO = b"Hello, World!\n"
BIG = b"x" * (100 * 1024)
SLEEP_SECONDS = 0.010
READ_CHUNK = 64 * 1024


def hello(environ, start_response):
    """The smallest response: what a server costs per request."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def big(environ, start_response):
    """A 100 KB body, one string: how a server writes out more than a socket buffer."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BIG)))])
    return [BIG]


def echo(environ, start_response):
    """Reads the whole request body and sends it back: upload and download of the same size.

    Reads by Content-Length rather than until ``b""``, which PEP 3333 does not promise.
    """
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    chunks = []
    while remaining > 0:
        chunk = stream.read(min(remaining, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def sleep(environ, start_response):
    """Waits 10 ms as if on a database: what threads (or their absence) do to throughput."""
    time.sleep(SLEEP_SECONDS)
    return hello(environ, start_response)


SHARED: dict[int, bytes] = {}


def shared(environ, start_response):
    """One ``bytes`` of ``?n=`` bytes (default 8 MiB), made once and shared by every response:
    what a server holds per slow reader beyond the app's own object."""
    query = environ.get("QUERY_STRING", "")
    size = int(query[2:]) if query.startswith("n=") else 8 * 1024 * 1024
    body = SHARED.get(size) or SHARED.setdefault(size, b"x" * size)
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return [body]
