"""App factories for the ``module:factory(args)`` form of APP_MODULE."""

import json

not_callable = 42


def create_app(*args, **kwargs):
    doc = json.dumps({"args": list(args), "kwargs": kwargs}).encode()

    def app(environ, start_response):
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(doc)))]
        )
        return [doc]

    return app
