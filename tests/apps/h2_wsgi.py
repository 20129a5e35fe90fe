"""For test_http2: ``/env`` says what the environ says of the request (protocol, scheme,
client port); ``/big`` is 50 MiB of a known pattern in 64 KiB pieces; ``/upload`` reads
the body in pieces and answers its length and sha256; ``/slow`` waits 0.2 s and reports
how many ``/slow`` requests were in the app at once; ``/stream`` yields pieces slowly and
records in ``$H2_CLOSED`` that its ``close()`` ran; ``/write`` sends ``first`` through
``write()``, waits (up to 10 s) for the file ``$H2_FLAG``, then sends ``second``."""

import hashlib
import json
import os
import threading
import time

PIECE = bytes(range(256)) * 256  # 64 KiB
BIG_PIECES = 800  # 50 MiB
_lock = threading.Lock()
_inside = 0
_most = 0


def _slow():
    global _inside, _most
    with _lock:
        _inside += 1
        _most = max(_most, _inside)
    time.sleep(0.2)
    with _lock:
        _inside -= 1
        return {"most": _most}


class Stream:
    """Pieces with pauses; ``close()`` is what a reset stream must reach."""

    def __iter__(self):
        for _ in range(50):
            yield b"x" * 1024
            time.sleep(0.05)

    def close(self):
        with open(os.environ["H2_CLOSED"], "a") as f:
            f.write("closed\n")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        length = str(len(PIECE) * BIG_PIECES)
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", length)]
        )
        return (PIECE for _ in range(BIG_PIECES))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first")
        deadline = time.monotonic() + 10
        while not os.path.exists(os.environ["H2_FLAG"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        write(b"second")
        return []
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Stream()
    if path == "/upload":
        digest, n = hashlib.sha256(), 0
        while piece := environ["wsgi.input"].read(65536):
            digest.update(piece)
            n += len(piece)
        said = {"length": n, "sha256": digest.hexdigest()}
    elif path == "/slow":
        said = _slow()
    else:
        said = {
            "protocol": environ["SERVER_PROTOCOL"],
            "scheme": environ["wsgi.url_scheme"],
            "port": environ["REMOTE_PORT"],
            "host": environ.get("HTTP_HOST"),
        }
    body = json.dumps(said).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
