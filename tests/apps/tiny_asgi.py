"""Tiny ASGI apps for tests/test_asgi.py: each path of ``app`` is one behaviour."""

import asyncio
import os

#: Lifespan events of this process, written to $ASGI_LIFESPAN_LOG as "pid event" lines.
LIFESPAN_LOG = os.environ.get("ASGI_LIFESPAN_LOG")


def _note(event):
    if LIFESPAN_LOG:
        with open(LIFESPAN_LOG, "a") as f:
            f.write(f"{os.getpid()} {event}\n")


async def _respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _read_all(receive):
    body = bytearray()
    pieces = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, pieces
        body += message.get("body", b"")
        pieces += 1
        if not message.get("more_body", False):
            return bytes(body), pieces


async def _lifespan(receive, send, fail):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if fail:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            _note("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _note("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        scope["state"]["started_by"] = os.getpid()
        return await _lifespan(receive, send, fail=False)
    path = scope["path"]
    if path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(5):
            await send({"type": "http.response.body", "body": b"piece %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        body, pieces = await _read_all(receive)
        headers = [(b"x-pieces", str(pieces).encode())]
        await _respond(send, 200, b"%d:" % len(body) + body[:16] + body[-16:], headers)
    elif path == "/boom":
        raise RuntimeError("boom from the app")
    elif path == "/half":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom mid-response")
    elif path == "/scope":
        keep = (
            "type",
            "http_version",
            "method",
            "scheme",
            "path",
            "raw_path",
            "query_string",
            "root_path",
            "asgi",
        )
        shown = {
            k: (v.decode("latin-1") if isinstance(v, bytes) else v)
            for k, v in scope.items()
            if k in keep
        }
        shown["client_is_tuple"] = isinstance(scope["client"], (tuple, list))
        shown["server_port"] = scope["server"][1]
        shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        shown["state"] = dict(scope.get("state") or {})
        import json

        await _respond(
            send, 200, json.dumps(shown).encode(), [(b"content-type", b"application/json")]
        )
    elif path == "/slow":
        _note("slow")
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await _respond(send, 200, b"slow done")
    elif path == "/loose-types":
        # Header pairs as lists and bytearray bodies: the spec's iterables, not tuples.
        await send({"type": "http.response.start", "status": 201, "headers": [[b"x-a", b"1"]]})
        await send({"type": "http.response.body", "body": bytearray(b"loose")})
    elif path == "/block":
        # Blocks the event loop itself, as a coroutine that calls time.sleep does.
        import time

        time.sleep(60)
    elif path == "/wait-disconnect":
        # Answers nothing: waits for the client to go, then notes that it heard.
        _note("waiting")
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        _note("disconnect")
    else:
        await _respond(send, 200, b"Hello, World!", [(b"content-type", b"text/plain")])


async def failing_lifespan(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send, fail=True)
    await _respond(send, 200, b"never")


async def no_lifespan(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("lifespan is not supported here")
    await _respond(send, 200, b"served without lifespan")


async def hello(scope, receive, send):
    """The benchmark's app: the least an ASGI app can do."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, World!"})
