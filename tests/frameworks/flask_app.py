"""A Flask app for the end-to-end tests: a streamed response and ``send_file``.

- ``GET /stream?n=N&size=S``: ``N`` chunks (default 1000) from a generator under
  ``stream_with_context``; chunk ``i`` is ``stream_chunk(i, S)``. The generator reads the
  request's arguments while it runs, which only works inside the request context.
- ``GET|HEAD /file``: ``send_file`` of the file named by ``$FERRICORN_FLASK_FILE``, with
  Flask's conditional handling (ETag, Last-Modified, 304, Range); Werkzeug hands the open
  file to ``wsgi.file_wrapper``.
- ``GET /wrapper``: the type of ``environ["wsgi.file_wrapper"]``, to see which one Flask got.
"""

import os

from flask import Flask, Response, request, send_file, stream_with_context

app = Flask(__name__)

FILE_ENV = "FERRICORN_FLASK_FILE"


def stream_chunk(index: int, size: int = 64) -> bytes:
    """Chunk ``index`` of ``/stream``: its number, then filler, ``size`` bytes in all."""
    head = b"%06d:" % index
    filler = bytes((index + k) % 256 for k in range(max(0, size - len(head) - 1)))
    return (head + filler + b"\n")[:size]


@app.get("/stream")
def stream():
    def generate():
        # Read inside the generator: without stream_with_context, request is gone by now.
        count = int(request.args.get("n", "1000"))
        size = int(request.args.get("size", "64"))
        for index in range(count):
            yield stream_chunk(index, size)

    return Response(stream_with_context(generate()), mimetype="application/octet-stream")


@app.route("/file", methods=["GET", "HEAD"])
def file():
    return send_file(
        os.environ[FILE_ENV],
        mimetype="application/octet-stream",
        conditional=True,
        etag=True,
    )


@app.get("/wrapper")
def wrapper():
    kind = request.environ.get("wsgi.file_wrapper")
    return {"file_wrapper": f"{kind.__module__}.{kind.__qualname__}"}
