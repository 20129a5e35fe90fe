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
