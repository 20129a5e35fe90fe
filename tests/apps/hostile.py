"""Apps that misbehave on purpose, for tests/test_hostile_apps.py.

Every answer is ``ROUTE PID`` on one line, so a test can tell which worker served it.

- ``/abandon-reader``: starts a thread that reads ``wsgi.input`` (a body the client never
  sends) and answers without waiting for it: the thread is still blocked in ``read()``
  while the server finishes the response.
- ``/panic``: arms ferricorn's test hook, so that Rust panics on this thread once the app
  returns (``ferricorn._ferricorn._panic_after_app``), then answers.
- ``/panic-outside``: the same hook armed for the worker's loop, which panics at the end
  of its turn, outside any request (async worker, app on the loop thread), then answers.
- ``/sleep?s=``: says ``sleep start PID`` on wsgi.errors, sleeps ``s`` seconds, answers.
- ``/slurp``: reads the body whole and answers its length.
- anything else: answers at once.
"""

import os
import threading
import time
from urllib.parse import parse_qs

# How long the app gives its reader thread to enter read() and block there. The bug this
# route reproduces needs the thread to be inside read() when the app returns; with the
# fix the answer is the same either way, so the wait only matters for the unfixed code.
READER_START = 0.3


def _answer(start_response, route, extra=""):
    body = f"{route} {os.getpid()}{extra}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _read_quietly(stream, started):
    started.set()
    try:
        stream.read()
    except OSError:  # ClientDisconnected once the client goes away: expected here
        pass


def app(environ, start_response):
    route = environ.get("PATH_INFO", "/")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "/abandon-reader":
        started = threading.Event()
        reader = threading.Thread(
            target=_read_quietly, args=(environ["wsgi.input"], started), daemon=True
        )
        reader.start()
        started.wait(5)
        time.sleep(READER_START)
        return _answer(start_response, route)
    if route == "/panic":
        from ferricorn import _ferricorn

        _ferricorn._panic_after_app()
        return _answer(start_response, route)
    if route == "/panic-outside":
        from ferricorn import _ferricorn

        _ferricorn._panic_after_app(outside_request=True)
        return _answer(start_response, route)
    if route == "/sleep":
        environ["wsgi.errors"].write(f"sleep start {os.getpid()}\n")
        environ["wsgi.errors"].flush()
        time.sleep(float(query.get("s", "0")))
        return _answer(start_response, route)
    if route == "/slurp":
        body = environ["wsgi.input"].read()
        return _answer(start_response, route, f" {len(body)}")
    return _answer(start_response, route)
