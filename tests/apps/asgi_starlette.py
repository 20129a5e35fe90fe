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

import os

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from apps import asgi_common
from apps.asgi_common import later, lifespan, parts


async def hello(request):
    return PlainTextResponse("hello starlette\n", headers={"X-App": "starlette"})


async def pid(request):
    return PlainTextResponse(f"{os.getpid()}\n")


async def stream(request):
    return StreamingResponse(parts(request.query_params["go"]), media_type="text/plain")


async def background(request):
    key, go = request.query_params["key"], request.query_params["go"]
    return PlainTextResponse("queued\n", background=BackgroundTask(later, key, go))


async def echo(websocket: WebSocket):
    await asgi_common.echo(websocket, WebSocketDisconnect)


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
