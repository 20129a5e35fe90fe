"""Apps for how the async worker sends responses (tests/test_hostile_async.py).

- ``shared``: one big ``bytes``, made once and returned by every response: what a server
  holds per slow reader beyond the app's own object (issue 8, bug 10).
- ``trickle``: a generator that yields a first block, then waits for the test to create a
  file before it yields the rest: a streamed block must reach the client while the app is
  still busy with the next (issue 9, item 1).
"""

import os
import time
from urllib.parse import parse_qs

SHARED: dict[int, bytes] = {}
# How long ``trickle`` waits for its go-ahead file at most, so a failed test ends.
TRICKLE_WAIT = 10.0


def shared(environ, start_response):
    """``?n=SIZE`` bytes (default 8 MiB), the same object each time."""
    query = environ.get("QUERY_STRING", "")
    size = int(query[2:]) if query.startswith("n=") else 8 * 1024 * 1024
    body = SHARED.get(size) or SHARED.setdefault(size, b"x" * size)
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return [body]


def trickle(environ, start_response):
    """``?go=PATH``: yields ``first``, waits until PATH exists, then yields ``second``."""
    go = parse_qs(environ.get("QUERY_STRING", ""))["go"][0]
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first\n"
        deadline = time.monotonic() + TRICKLE_WAIT
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the go-ahead, with a deadline
        yield b"second\n"

    return body()
