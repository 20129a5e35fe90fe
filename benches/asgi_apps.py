"""The ASGI app that ``benches/asgi_speed.py`` serves on every server, as
``benches.asgi_apps:app`` from the repository root.

- HTTP, any path: ``Hello, World!\\n`` (the same bytes as ``benches/apps.py``'s hello), with
  Content-Type and Content-Length, in one ``http.response.body``.
- WebSocket, any path: accepts, then echoes each message as it came (text as text, bytes as
  bytes) until the client leaves.
- Lifespan: completes startup and shutdown, so that no server logs an unsupported scope.

As small as ASGI allows, so that the figures measure the server, not the app.
"""

HELLO = b"Hello, World!\n"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())],
}
BODY = {"type": "http.response.body", "body": HELLO}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await send(START)
        await send(BODY)
    elif kind == "websocket":
        await echo(receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def echo(receive, send):
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})
