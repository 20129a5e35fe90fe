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

import contextlib
import hashlib

from fastapi import BackgroundTasks, FastAPI, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from apps.asgi_common import fail_startup, record, wait_go


@contextlib.asynccontextmanager
async def lifespan(app):
    record("startup")
    if fail_startup():
        raise RuntimeError("startup refused: ASGI_FAIL_STARTUP=1")
    yield
    record("shutdown")


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
    async def parts():
        yield b"first\n"
        await wait_go(go, "last")
        yield b"last\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def later(key: str, go: str) -> None:
    if await wait_go(go, "task"):
        record(f"background {key}")


@app.get("/background")
async def background(key: str, go: str, tasks: BackgroundTasks):
    tasks.add_task(later, key, go)
    return {"queued": key}


@app.websocket("/ws")
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
