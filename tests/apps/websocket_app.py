"""A Flask-Sock app: WebSockets over the server's socket (``gunicorn.socket``), for
tests/test_websocket_wsgi.py, run on ferricorn and on gunicorn 27 alike.

- ``/ws``: echo. The text ``close <code> <reason>`` makes the server close with that code;
  ``socket`` answers with the type of the socket the app was handed.
- ``/hello``: a plain HTTP answer, for requests served while sockets are open.
"""

import threading

from flask import Flask, request
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)

# How many WebSocket routes run at once (``/count`` says), to see that the server holds
# them all open together.
_open = 0
_lock = threading.Lock()


@sock.route("/ws")
def echo(ws):
    global _open
    with _lock:
        _open += 1
    try:
        while True:
            message = ws.receive()
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                ws.close(reason=int(code), message=reason)
                return
            if message == "socket":
                handed = request.environ["gunicorn.socket"]
                message = f"{type(handed).__module__}.{type(handed).__qualname__}"
            ws.send(message)
    finally:
        with _lock:
            _open -= 1


@app.route("/hello")
def hello():
    return "hello\n"


@app.route("/count")
def count():
    with _lock:
        return str(_open)


def handled(environ, start_response):
    """A bare WSGI app that says "already handled" without having taken anything over."""
    raise StopIteration
