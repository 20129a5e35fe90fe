"""What the ASGI apps of tests/test_asgi_apps.py share: the test's go-ahead, and a record file.

- ``wait_go(directory, name)``: the app waits until the test creates ``directory/name``
  (polling, with a deadline so that a failed test ends). A streamed response sends a part,
  then waits for the test's go-ahead before the next: a server that holds the first part
  until the app finishes fails the test instead of passing it slowly.
- ``record(event)``: appends ``EVENT PID`` as one line to the file named by the
  ``ASGI_RECORD`` environment variable (one ``write`` on an ``O_APPEND`` descriptor, so
  lines of several workers do not interleave). Lifespan startup and shutdown and background
  tasks say here that they ran, and in which worker.
- ``FAIL_STARTUP``: set ``ASGI_FAIL_STARTUP=1`` and the app's lifespan startup raises.

What the framework apps (Starlette, FastAPI, Django) serve alike is here too, once:

- ``parts(go)``: a streamed body's parts, ``first`` then, after ``go/last``, ``last``.
- ``later(key, go)``: a background task; waits for ``go/task``, then records ``background KEY``.
- ``lifespan(app)``: the lifespan context (Starlette's and FastAPI's ``lifespan=``).
- ``close_code(text)``: the echo apps close when they get the text ``close:CODE``.
- ``echo(websocket, disconnected)``: the echo over a Starlette-style WebSocket.
"""

import asyncio
import contextlib
import os
import time

# How long an app waits for its go-ahead file at most, so a failed test ends; longer than
# the test waits for a part (SOCKET_TIMEOUT), so a server that holds parts fails the test.
GO_WAIT = 30.0
GO_POLL = 0.01


def fail_startup() -> bool:
    return os.environ.get("ASGI_FAIL_STARTUP") == "1"


async def wait_go(directory: str, name: str) -> bool:
    """Waits for the test's go-ahead file; False when the deadline passed without it."""
    path = os.path.join(directory, name)
    deadline = time.monotonic() + GO_WAIT
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(GO_POLL)  # polling the go-ahead, with a deadline
    return True


def record(event: str) -> None:
    """One line ``EVENT PID`` in $ASGI_RECORD; nothing when the variable is unset."""
    path = os.environ.get("ASGI_RECORD")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def parts(go: str):
    """A streamed body: ``first``, then, after the go-ahead ``go/last``, ``last``."""
    yield b"first\n"
    await wait_go(go, "last")
    yield b"last\n"


async def later(key: str, go: str) -> None:
    """A background task: records ``background KEY`` once the go-ahead ``go/task`` exists."""
    if await wait_go(go, "task"):
        record(f"background {key}")


@contextlib.asynccontextmanager
async def lifespan(app):
    """Records ``startup`` and ``shutdown``; startup raises when ``ASGI_FAIL_STARTUP=1``."""
    record("startup")
    if fail_startup():
        raise RuntimeError("startup refused: ASGI_FAIL_STARTUP=1")
    yield
    record("shutdown")


def close_code(text: str | None) -> int | None:
    """CODE when ``text`` is ``close:CODE``, the echo apps' request to close with it."""
    if text is not None and text.startswith("close:"):
        return int(text.split(":", 1)[1])
    return None


async def echo(websocket, disconnected: type[Exception]) -> None:
    """Accepts, then echoes text as text and bytes as bytes until the client leaves
    (``disconnected``: the framework's exception for it) or asks to close."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if (code := close_code(text)) is not None:
                await websocket.close(code=code)
                return
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])
    except disconnected:
        return
