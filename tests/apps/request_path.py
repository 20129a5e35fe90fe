"""Apps for tests/test_request_path.py: how a request starts, fails and is answered.

``/raise`` fails before its headers. ``/squeeze`` leaves the worker one descriptor to
open (this request's socket's, once it closes): the next request must then be served with
no descriptor beyond its own socket, as gunicorn serves it. ``/count`` says how many
descriptors the worker holds for its connection while the body streams.
"""

import os
import resource

# Descriptors /squeeze took, kept open for the worker's life.
_HELD: list[int] = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("boom before headers " + environ["QUERY_STRING"])
    if path == "/squeeze":
        answer = str(squeeze(environ)).encode()
    elif path == "/count":
        # In the middle of the body: what the worker holds while wsgi.input streams.
        first = environ["wsgi.input"].read(10)
        fds = len(connection_descriptors(environ))
        rest = environ["wsgi.input"].read()
        answer = b"fds %d read %d" % (fds, len(first) + len(rest))
    else:
        answer = b"read %d" % len(environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


def squeeze(environ) -> int:
    """Leaves the worker one descriptor to open, the lowest of this request's socket once
    it closes: every hole below it is filled and the limit set just above it (descriptors
    already open above the limit stay usable). Returns that descriptor."""
    lowest = min(connection_descriptors(environ))
    while True:
        fd = os.open("/dev/null", os.O_RDONLY)
        if fd > lowest:
            os.close(fd)
            break
        _HELD.append(fd)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + 1, hard))
    return lowest


def connection_descriptors(environ) -> list[int]:
    """The worker's descriptors for this request's socket (TCP on 127.0.0.1): its inode,
    from /proc/net/tcp, against every descriptor's link."""
    server, client = int(environ["SERVER_PORT"]), int(environ["REMOTE_PORT"])
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.split(":")[1], 16) == server and int(remote.split(":")[1], 16) == client:
                break
        else:
            return []
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == f"socket:[{inode}]":
                found.append(int(fd))
        except OSError:
            pass  # listdir's own descriptor, closed by now
    return found
