"""A WSGI app that forwards each request to a live HTTP server, for WebTest.

WebTest talks to a real server (``TestApp("http://...")`` or ``$WEBTEST_TARGET_URL``) through
WSGIProxy2's ``HostProxy``. This is the same idea in a few lines of ``http.client``, for when
WSGIProxy2 is not installed: one request per connection, hop-by-hop headers dropped, the
body read whole (``http.client`` removes the chunked framing).
"""

import http.client
from urllib.parse import quote, urlsplit

# Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class HttpProxy:
    def __init__(self, url: str, timeout: float = 10.0):
        parts = urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout

    def __call__(self, environ, start_response):
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].lower().replace("_", "-") not in HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        if body is not None:
            headers["Content-Length"] = str(length)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = f"{response.status} {response.reason}"
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        finally:
            conn.close()
        start_response(status, out)
        return [data]
