"""An app module that raises while it is imported."""


def helper():
    raise RuntimeError("kaboom at import")  # test_cli looks for this line in the traceback


helper()


def app(environ, start_response):  # never reached
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable"]
