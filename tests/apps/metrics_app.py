"""The app of the metrics and queue-time tests.

- ``/``: a short text body.
- ``/sleep?s=``: writes ``sleep start`` to wsgi.errors, sleeps ``s`` seconds, answers.
- ``/start``: the environ's ``mod_wsgi.queue_start`` and ``HTTP_X_REQUEST_START``, and the
  worker's clock, as JSON.
"""

import json
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    route = environ.get("PATH_INFO", "/")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "/sleep":
        environ["wsgi.errors"].write("sleep start\n")
        environ["wsgi.errors"].flush()
        time.sleep(float(query["s"]))
    if route == "/start":
        doc = {
            "queue_start": environ.get("mod_wsgi.queue_start"),
            "request_start": environ.get("HTTP_X_REQUEST_START"),
            "now": time.time(),
        }
        body = json.dumps(doc).encode()
    else:
        body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
