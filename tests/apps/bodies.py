"""Request bodies for tests/test_request_body.py: read them one way or another, and count
the calls.

Every call appends a line to ``$BODIES_CALLS`` (when set), so a test can tell that the app
was never called for a request the server refused. Paths:

- ``/sha256?how=HOW``: reads the whole body (``read``: ``read()``; ``read-n``: ``read(8191)``
  until ``b""``; ``readline``: ``readline()`` until ``b""``; ``iter``: iterates the input)
  and answers ``{"sha256", "length"}`` as JSON. A body that cannot be read (over the limit,
  cut short) raises out of the app, so the server answers for it.
- ``/ignore``: answers without reading the body.
"""

import hashlib
import json
import os
from urllib.parse import parse_qs


def _count_call(environ):
    path = os.environ.get("BODIES_CALLS")
    if path:
        with open(path, "a") as calls:
            calls.write(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}\n")


def _pieces(stream, how):
    if how == "read":
        yield stream.read()
    elif how == "read-n":
        while chunk := stream.read(8191):
            yield chunk
    elif how == "readline":
        while line := stream.readline():
            yield line
    elif how == "iter":
        yield from stream
    else:
        raise ValueError(how)


def app(environ, start_response):
    _count_call(environ)
    if environ["PATH_INFO"] == "/ignore":
        body = b"ignored\n"
    else:
        how = parse_qs(environ.get("QUERY_STRING", "")).get("how", ["read"])[0]
        digest, length = hashlib.sha256(), 0
        for piece in _pieces(environ["wsgi.input"], how):
            digest.update(piece)
            length += len(piece)
        body = json.dumps({"sha256": digest.hexdigest(), "length": length}).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
