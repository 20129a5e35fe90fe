"""The app the drop-in tests serve, on ferricorn and on gunicorn alike.

``/barrier?n=N`` answers ``met`` only when N requests are inside the app at the same
time (a ``threading.Barrier``), so a test sees concurrency as the app sees it, not as a
wall-clock time; a server that runs them one at a time answers ``broken`` after the
barrier's timeout. ``/`` answers ``ok``.
"""

import threading
from urllib.parse import parse_qs

BARRIER_TIMEOUT = 10.0
_barriers: dict[int, threading.Barrier] = {}
_lock = threading.Lock()


def _barrier(n: int) -> threading.Barrier:
    with _lock:
        return _barriers.setdefault(n, threading.Barrier(n, timeout=BARRIER_TIMEOUT))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/barrier":
        n = int(parse_qs(environ["QUERY_STRING"]).get("n", ["2"])[0])
        try:
            _barrier(n).wait()
            body = b"met"
        except threading.BrokenBarrierError:
            body = b"broken"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app
