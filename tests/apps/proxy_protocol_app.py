"""For test_proxy_protocol: what the environ says of the client and of a PROXY header."""

import json

_KEYS = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "PROXY_PROTOCOL",
    "PROXY_ADDR",
    "PROXY_PORT",
    "wsgi.url_scheme",
)


def app(environ, start_response):
    doc = {key: environ.get(key) for key in _KEYS}
    doc["path"] = environ["PATH_INFO"]
    body = json.dumps(doc).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi_app(scope, receive, send):
    """The same document from an ASGI scope (``-k asgi``): the client, the scheme; the
    scope has no ``PROXY_*`` keys."""
    if scope["type"] != "http":
        return
    client = scope["client"]
    doc = {key: None for key in _KEYS}
    doc["REMOTE_ADDR"], doc["REMOTE_PORT"] = (client[0], str(client[1])) if client else (None, None)
    doc["wsgi.url_scheme"] = scope["scheme"]
    doc["path"] = scope["path"]
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
