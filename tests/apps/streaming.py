"""Apps for streamed responses through the ``write()`` callable (tests/test_streaming.py).

Each app waits for the test between two writes: the test creates a go-ahead file once it
has received the first, so a server that holds ``write()`` data until the app returns
fails the test instead of passing it slowly.

- ``progress``: ``write(b"first\\n")``, wait for ``?go=PATH``, ``write(b"second\\n")``,
  return ``[]``. ``?length=1`` sets Content-Length (13) so the framing is by length.
- ``reraise``: ``write(b"partial\\n")``, then ``start_response(..., exc_info)``, which must
  raise since the head is out (PEP 3333); the app writes what happened.
- ``until_gone``: writes until ``write()`` raises (the client left) and records the
  exception's class names in ``?out=PATH``.
- ``write_in_generator``: ``write()`` called from inside the returned generator, between
  two yields: the bytes keep their order.
"""

import os
import sys
import time
from urllib.parse import parse_qs

# How long an app waits for its go-ahead file at most, so a failed test ends.
GO_WAIT = 10.0


def query(environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + GO_WAIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the go-ahead, with a deadline


def progress(environ, start_response):
    args = query(environ)
    headers = [("Content-Type", "text/plain")]
    if args.get("length"):
        headers.append(("Content-Length", str(len(b"first\nsecond\n"))))
    write = start_response("200 OK", headers)
    write(b"first\n")
    wait_for_file(args["go"])
    write(b"second\n")
    return []


def reraise(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial\n")
    try:
        raise ValueError("after the head went out")
    except ValueError:
        try:
            start_response("500 Internal Server Error", [], sys.exc_info())
        except ValueError:
            write(b"reraised\n")
        else:
            write(b"replaced\n")
    return []


def until_gone(environ, start_response):
    out = query(environ)["out"]
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"x" * 65536
    deadline = time.monotonic() + GO_WAIT
    try:
        while time.monotonic() < deadline:
            write(block)
        result = "no error"
    except Exception as exc:  # what the app sees is what the test checks
        result = " ".join(c.__name__ for c in type(exc).__mro__)
    with open(out + ".tmp", "w") as f:
        f.write(result)
    os.rename(out + ".tmp", out)
    return []


def write_in_generator(environ, start_response):
    go = query(environ)["go"]
    write = start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"one\n"
        write(b"two\n")
        wait_for_file(go)
        yield b"three\n"

    return body()
