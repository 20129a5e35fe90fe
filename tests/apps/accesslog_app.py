"""The app tests/test_accesslog.py serves under both gunicorn and ferricorn.

Its answers depend only on the request, and the response headers it sets are ones both
servers pass through unchanged, so the two servers' access-log lines can be compared byte
for byte. Routes, on the first segment of PATH_INFO:

- ``/stream``: 200 with no Content-Length, the body yielded in pieces (one of them empty),
  so the server frames it (chunked, or until the close for HTTP/1.0);
- ``/nocontent``: 204 with no body;
- ``/nowhere``: 404 with a short body;
- ``/boom``: raises before start_response, so the server answers 500 itself;
- anything else: 200 with a Content-Length; the body names the method and path, and, for a
  request with a body, how many bytes of it the app read.
"""

STREAM = [b"first ", b"", b"second ", b"third\n"]

# Response headers every route sends; ``X-Multi`` twice (gunicorn's ``{x-multi}o`` is the
# last one) and ``X-App`` with a double quote (escaped in the log line).
COMMON = [("X-App", 'acc"log'), ("X-Multi", "one"), ("X-Multi", "two")]


def app(environ, start_response):
    route = environ["PATH_INFO"].split("/")[1:2]
    route = route[0] if route else ""
    if route == "stream":
        start_response("200 OK", [("Content-Type", "text/plain")] + COMMON)
        return iter(STREAM)
    if route == "boom":
        raise RuntimeError("accesslog_app: /boom fails before start_response")
    if route == "nocontent":
        start_response("204 No Content", list(COMMON))
        return []
    body = environ["wsgi.input"].read()
    text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}"
    if body:
        text += f" read {len(body)}"
    out = (text + "\n").encode("latin-1")
    status = "404 Not Found" if route == "nowhere" else "200 OK"
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(out)))]
    start_response(status, headers + COMMON)
    return [out]
