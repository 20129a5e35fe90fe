"""Apps for the timeout tests (tests/test_request_timeout.py, tests/test_timeout_stacks.py).

/pid answers the worker's pid; /stuck sleeps in ``stuck_here`` (short sleeps, so an
exception raised in the thread lands between them); /stuck-long sleeps in one long C call;
/swallow catches ``Exception`` around the sleep; /stream sends its head and a chunk, then
sleeps in ``stuck_here``; /nap sleeps 2.5 s in ``stuck_here`` then answers; /gil holds the
GIL in C for minutes (``stuck_in_c``); /quick answers after 0.2 s; /trickle yields a
line every 0.5 s for 3 s.
"""

import asyncio
import os
import re
import time


def stuck_here(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def stuck_long(seconds):
    time.sleep(seconds)


def stuck_in_c():
    """Catastrophic backtracking: minutes in C (the regex engine) without letting go of the
    GIL, as a C extension stuck while holding it would be."""
    return re.match(r"(a+)+$", "a" * 34 + "b")


def swallowing(seconds):
    try:
        stuck_here(seconds)
    except Exception:  # noqa: BLE001 - what the test checks: RequestTimeout gets past it
        return b"swallowed\n"
    return b"slept\n"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return streaming()
    if path == "/trickle":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return trickle()
    if path == "/stuck":
        stuck_here(60)
        body = b"woke\n"
    elif path == "/stuck-long":
        stuck_long(60)
        body = b"woke\n"
    elif path == "/gil":
        stuck_in_c()
        body = b"matched\n"
    elif path == "/swallow":
        body = swallowing(60)
    elif path == "/nap":
        stuck_here(2.5)
        body = b"woke\n"
    elif path == "/quick":
        time.sleep(0.2)
        body = b"quick\n"
    else:
        body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def streaming():
    yield b"first chunk\n"
    stuck_here(60)
    yield b"never\n"


def trickle():
    for _ in range(6):
        time.sleep(0.5)
        yield b"tick\n"


async def stuck_here_async(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _answer(send, body, status=200):
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def asgi_app(scope, receive, send):
    """The same paths for ``-k asgi`` (/pid, /stuck, /stream, /swallow, /nap, /quick),
    stuck in ``stuck_here_async``: awaits, where a cancellation lands."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first chunk\n", "more_body": True})
        await stuck_here_async(60)
        await send({"type": "http.response.body", "body": b"never\n"})
        return
    if path == "/stuck":
        await stuck_here_async(60)
        body = b"woke\n"
    elif path == "/swallow":
        try:
            await stuck_here_async(60)
        except Exception:  # noqa: BLE001 - what the test checks: the cancellation gets past it
            body = b"swallowed\n"
        else:
            body = b"slept\n"
    elif path == "/nap":
        await stuck_here_async(2.5)
        body = b"woke\n"
    elif path == "/quick":
        await asyncio.sleep(0.2)
        body = b"quick\n"
    else:
        body = f"{os.getpid()}\n".encode()
    await _answer(send, body)
