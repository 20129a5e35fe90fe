"""For test_http2_asgi, the ASGI twin of ``h2_wsgi``: ``/env`` says what the scope says
of the request (``http_version``, scheme, client port); ``/big`` is 50 MiB of a known
pattern in 64 KiB messages; ``/upload`` reads the body message by message and answers its
length and sha256; ``/slow`` waits 0.2 s and reports how many ``/slow`` requests were in
the app at once; ``/stream`` sends pieces slowly and records in ``$H2_CLOSED`` that the
client's going reached it (``http.disconnect``, or ``send()`` cut short)."""

import asyncio
import hashlib
import json
import os

PIECE = bytes(range(256)) * 256  # 64 KiB
BIG_PIECES = 800  # 50 MiB
_inside = 0
_most = 0


async def _json(send, said, status=200):
    body = json.dumps(said).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _slow():
    global _inside, _most
    _inside += 1
    _most = max(_most, _inside)
    await asyncio.sleep(0.2)
    _inside -= 1
    return {"most": _most}


async def _stream(receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})

    async def gone():
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    for _ in range(50):
        if watcher.done():
            break
        await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        await asyncio.sleep(0.05)
    else:
        await send({"type": "http.response.body", "body": b""})
        watcher.cancel()
        return
    with open(os.environ["H2_CLOSED"], "a") as f:
        f.write("disconnected\n")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/big":
        length = b"%d" % (len(PIECE) * BIG_PIECES)
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(BIG_PIECES):
            more = i < BIG_PIECES - 1
            await send({"type": "http.response.body", "body": PIECE, "more_body": more})
        return
    if path == "/stream":
        return await _stream(receive, send)
    if path == "/upload":
        digest, n, more = hashlib.sha256(), 0, True
        while more:
            message = await receive()
            body = message.get("body", b"")
            digest.update(body)
            n += len(body)
            more = message.get("more_body", False)
        said = {"length": n, "sha256": digest.hexdigest()}
    elif path == "/slow":
        said = await _slow()
    else:
        headers = dict(scope["headers"])
        said = {
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "port": scope["client"][1],
            "authority": (headers.get(b":authority") or headers.get(b"host") or b"").decode(),
        }
    await _json(send, said)
