"""For test_uwsgi: the request as the app sees it, as JSON: the environ's string values
(the WSGI server's own keys left out) and the body's length and sha256."""

import hashlib
import json

# Keys whose value is the server's own (its name and version, a timestamp).
OWN = {"SERVER_SOFTWARE", "mod_wsgi.queue_start"}


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    doc = {k: v for k, v in environ.items() if isinstance(v, str) and k not in OWN}
    doc["body_length"] = len(body)
    doc["body_sha256"] = hashlib.sha256(body).hexdigest()
    out = json.dumps(doc, sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


def unsized(environ, start_response):
    """A body of unknown length: chunked over HTTP/1.1, never over uwsgi."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one ", b"two"]
