"""A Starlette app for tests/test_asgi_apps.py (serve ``apps.asgi_starlette:app``).

- ``GET /``: ``hello starlette`` with an ``X-App: starlette`` header.
- ``GET /pid``: the worker's pid, so a test can tell old workers from new ones.
- ``GET /stream?go=DIR``: a StreamingResponse, ``first`` then, after the go-ahead
  ``DIR/last``, ``last``.
- ``GET /background?go=DIR&key=K``: answers ``queued``; a BackgroundTask then waits for
  ``DIR/task`` and records ``background K``: the response must not wait for the task.
- ``WS /ws``: echoes text as text and bytes as bytes; the text ``close:CODE`` closes with
  CODE.
- Lifespan: records ``startup`` and ``shutdown`` (``apps.asgi_common.record``); startup
  raises when ``ASGI_FAIL_STARTUP=1``.
"""

import contextlib
import os

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from apps.asgi_common import fail_startup, record, wait_go


async def hello(request):
    return PlainTextResponse("hello starlette\n", headers={"X-App": "starlette"})


async def pid(request):
    return PlainTextResponse(f"{os.getpid()}\n")


async def stream(request):
    go = request.query_params["go"]

    async def parts():
        yield b"first\n"
        await wait_go(go, "last")
        yield b"last\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def later(key: str, go: str) -> None:
    if await wait_go(go, "task"):
        record(f"background {key}")


async def background(request):
    key, go = request.query_params["key"], request.query_params["go"]
    return PlainTextResponse("queued\n", background=BackgroundTask(later, key, go))


async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None and text.startswith("close:"):
                await websocket.close(code=int(text.split(":", 1)[1]))
                return
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


@contextlib.asynccontextmanager
async def lifespan(app):
    record("startup")
    if fail_startup():
        raise RuntimeError("startup refused: ASGI_FAIL_STARTUP=1")
    yield
    record("shutdown")


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/pid", pid),
        Route("/stream", stream),
        Route("/background", background),
        WebSocketRoute("/ws", echo),
    ],
    lifespan=lifespan,
)
