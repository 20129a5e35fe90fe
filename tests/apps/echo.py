"""Echo: answers with JSON describing the request the application received.

Used by the corpus replay and, wrapped in ``wsgiref.validate.validator``, by test_wsgi.
The body is read with ``read(n)`` in a loop (the validator forbids a bare ``read()``) until
it returns ``b""``, which relies on ``wsgi.input_terminated``.
"""

import json
import warnings
from wsgiref.validate import WSGIWarning, validator

# The validator only warns about some departures from PEP 3333; here they fail the request.
warnings.filterwarnings("error", category=WSGIWarning)

_CONTENT_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def _read_all(stream):
    chunks = []
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def app(environ, start_response):
    body = _read_all(environ["wsgi.input"])
    doc = {
        "method": environ["REQUEST_METHOD"],
        "raw_uri": environ.get("RAW_URI"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "headers": {
            key: value
            for key, value in environ.items()
            if key.startswith("HTTP_") or key in _CONTENT_KEYS
        },
        "body_hex": body.hex(),
    }
    out = json.dumps(doc).encode("ascii")
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


validated_app = validator(app)


async def asgi_app(scope, receive, send):
    """The same document from an ASGI scope, its headers named as the environ names them
    (for the corpus's PROXY protocol cases on ``-k asgi``)."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False) and message["type"] == "http.request"
    headers = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        key = key if key in _CONTENT_KEYS else "HTTP_" + key
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    query = scope["query_string"].decode("latin-1")
    raw_path = scope["raw_path"].decode("latin-1")
    doc = {
        "method": scope["method"],
        "raw_uri": f"{raw_path}?{query}" if query else raw_path,
        "path": scope["path"],
        "query": query,
        "protocol": "HTTP/" + scope["http_version"],
        "headers": headers,
        "body_hex": body.hex(),
    }
    out = json.dumps(doc).encode("ascii")
    length = str(len(out)).encode()
    response = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 200, "headers": response})
    await send({"type": "http.response.body", "body": out})
