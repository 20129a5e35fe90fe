"""For test_proxy: what the environ says about the front end."""

import json


def app(environ, start_response):
    doc = {
        "scheme": environ["wsgi.url_scheme"],
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }
    body = json.dumps(doc).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
