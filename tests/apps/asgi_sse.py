"""A raw ASGI app (no framework) for tests/test_asgi_apps.py: SSE and a WebSocket echo.

Serve ``apps.asgi_sse:app``.

- ``GET /``: ``ok``.
- ``GET /events?n=N&go=DIR``: a ``text/event-stream`` of N events (``id: I`` and
  ``data: event I``), each its own ``http.response.body`` with ``more_body``; after event
  I (but the last) it waits for the test's go-ahead ``DIR/I``, so each event must reach
  the client before the next exists.
- WebSocket, any path: echoes text and bytes; the text ``close:CODE`` sends
  ``websocket.close`` with CODE.
- Lifespan: answers startup and shutdown, recording both (``apps.asgi_common.record``).
"""

from urllib.parse import parse_qs

from apps.asgi_common import close_code, record, wait_go


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["path"] == "/events":
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        await events(send, int(query.get("n", "3")), query["go"])
    else:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
        )
        await send({"type": "http.response.body", "body": b"ok\n"})


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            record("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def events(send, count: int, go: str):
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(count):
        event = f"id: {i}\ndata: event {i}\n\n".encode()
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if i + 1 < count and not await wait_go(go, str(i)):
            break
    await send({"type": "http.response.body", "body": b""})


async def echo(receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if (code := close_code(text)) is not None:
            await send({"type": "websocket.close", "code": code})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
