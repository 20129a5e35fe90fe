"""A Flask Server-Sent-Events stream (tests/test_streaming.py, benches/sse.py).

``GET /events?n=N&interval=S``: ``N`` events, one every ``S`` seconds (default 50 and 0.1),
from a generator under ``stream_with_context``. Each event's data is
``INDEX TIMESTAMP``, the app's ``time.time()`` when it yielded it, so a client can tell
how long the event took to reach it. ``&go=DIR`` makes the generator wait, after event
``i``, until ``DIR/i`` exists (the test's handshake) instead of sleeping. ``GET /``
answers ``ok`` (a readiness check).

``written``: the same events from a plain WSGI app through the ``write()`` callable (a
progress page of the pre-iterable kind), for benches/sse.py ``--write``.
"""

import os
import time
from urllib.parse import parse_qs

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)

# How long the generator waits for a handshake file at most, so a failed test ends.
GO_WAIT = 10.0


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + GO_WAIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the go-ahead, with a deadline


@app.get("/")
def ready():
    return "ok"


@app.get("/events")
def events():
    def generate():
        count = request.args.get("n", 50, type=int)
        interval = request.args.get("interval", 0.1, type=float)
        go = request.args.get("go")
        for i in range(count):
            yield f"id: {i}\ndata: {i} {time.time():.6f}\n\n"
            if go:
                wait_for_file(os.path.join(go, str(i)))
            elif i + 1 < count:
                time.sleep(interval)

    return Response(
        stream_with_context(generate()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def written(environ, start_response):
    args = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    write = start_response("200 OK", [("Content-Type", "text/event-stream")])
    if environ["PATH_INFO"] != "/events":
        write(b"ok")
        return []
    count, interval = int(args.get("n", 50)), float(args.get("interval", 0.1))
    for i in range(count):
        write(f"id: {i}\ndata: {i} {time.time():.6f}\n\n".encode())
        if i + 1 < count:
            time.sleep(interval)
    return []
