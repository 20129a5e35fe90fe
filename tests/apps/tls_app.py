"""For test_tls: ``/`` says what the environ says of the connection; ``/file`` sends the
file named by ``$TLS_TEST_FILE`` through ``wsgi.file_wrapper``; ``/client`` the environ's
``SSL_CLIENT_*`` keys; ``/remote`` the client's address."""

import json
import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/file":
        f = open(os.environ["TLS_TEST_FILE"], "rb")  # noqa: SIM115 - the wrapper closes it
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    said = {"scheme": environ["wsgi.url_scheme"]}
    if environ["PATH_INFO"] == "/client":
        said = {k: v for k, v in environ.items() if k.startswith("SSL_CLIENT_")}
    if environ["PATH_INFO"] == "/remote":
        said = {"remote": environ["REMOTE_ADDR"]}
    body = json.dumps(said).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
