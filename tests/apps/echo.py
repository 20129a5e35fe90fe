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
