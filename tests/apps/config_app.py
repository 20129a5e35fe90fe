"""For test_config: shows what the settings did to the worker it runs in."""

import os
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hang":
        time.sleep(60)
    body = f"FOO={os.environ.get('FOO')} pid={os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Hooked", "yes")])
    return [body]
