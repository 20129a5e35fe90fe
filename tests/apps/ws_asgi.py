"""WebSocket ASGI apps for tests/test_asgi_websocket.py: each path of ``app`` is one
behaviour. ``$WS_LOG``, when set, gets a ``pid path code`` line for every
``websocket.disconnect`` the app hears."""

import json
import os

LOG = os.environ.get("WS_LOG")


def _note(scope, message):
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{os.getpid()} {scope['path']} {message.get('code')}\n")


async def _echo(receive, send, scope):
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _note(scope, message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] != "websocket":
        body = b"plain http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return await send({"type": "http.response.body", "body": body})
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/deny":
        return await send({"type": "websocket.close"})
    if path == "/boom-before":
        raise RuntimeError("boom before accept")
    if path == "/return-before":
        return
    offered = scope["subprotocols"]
    accept = {"type": "websocket.accept"}
    if offered:
        accept["subprotocol"] = offered[-1]
    if path == "/headers":
        accept["headers"] = [(b"x-ws", b"yes")]
    await send(accept)
    if path == "/scope":
        keep = (
            "type",
            "http_version",
            "scheme",
            "path",
            "raw_path",
            "query_string",
            "root_path",
            "subprotocols",
        )
        view = {k: scope[k] for k in keep}
        view = {k: v.decode() if isinstance(v, bytes) else v for k, v in view.items()}
        view["headers"] = sorted(n.decode() for n, _ in scope["headers"])
        await send({"type": "websocket.send", "text": json.dumps(view)})
        return await _echo(receive, send, scope)
    if path == "/boom-after":
        raise RuntimeError("boom after accept")
    if path == "/return-after":
        return
    if path == "/close":
        message = await receive()
        code, _, reason = message["text"].partition(" ")
        return await send({"type": "websocket.close", "code": int(code), "reason": reason})
    if path == "/flood":
        count = int(scope["query_string"] or b"1000")
        for i in range(count):
            await send({"type": "websocket.send", "text": f"{i:06d}" + "x" * 1000})
        return await _echo(receive, send, scope)
    await _echo(receive, send, scope)
