"""A FastAPI app for tests/test_asgi_apps.py (serve ``apps.asgi_fastapi:app``).

- ``GET /json``: ``{"framework": "fastapi"}``.
- ``GET /items/{item_id}?q=...``: the path parameter as an int, the query one as given
  (``422`` when ``item_id`` is not an int: FastAPI's validation).
- ``POST /upload``: a multipart ``file`` (UploadFile); answers its name, size and sha256.
- ``GET /stream?go=DIR``: a StreamingResponse, ``first`` then, after ``DIR/last``, ``last``.
- ``GET /background?go=DIR&key=K``: answers at once; a BackgroundTasks task then waits for
  ``DIR/task`` and records ``background K``.
- ``WS /ws``: echoes text and bytes; the text ``close:CODE`` closes with CODE.
- Lifespan: records ``startup`` and ``shutdown``.
"""

import hashlib

from fastapi import BackgroundTasks, FastAPI, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from apps import asgi_common
from apps.asgi_common import later, lifespan, parts

app = FastAPI(lifespan=lifespan)


@app.get("/json")
async def json_route():
    return {"framework": "fastapi"}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/upload")
async def upload(file: UploadFile):
    digest = hashlib.sha256()
    size = 0
    while chunk := await file.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return {"filename": file.filename, "size": size, "sha256": digest.hexdigest()}


@app.get("/stream")
async def stream(go: str):
    return StreamingResponse(parts(go), media_type="text/plain")


@app.get("/background")
async def background(key: str, go: str, tasks: BackgroundTasks):
    tasks.add_task(later, key, go)
    return {"queued": key}


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await asgi_common.echo(websocket, WebSocketDisconnect)
