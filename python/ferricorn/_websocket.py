"""``gunicorn.socket``: the connection's socket, handed to a WSGI app that asks for a
WebSocket upgrade (simple-websocket and Flask-Sock read this key, as on gunicorn).

The worker passes a duplicate of its descriptor (its own copy stays with the worker,
which closes it once the app returns). The app's socket is a real ``socket.socket``; when
the client sent bytes right behind its upgrade request (its first frames, before the
101), the worker had already read them with the head, and they come first from
``recv``/``recv_into`` (a ``socket.socket`` subclass). See docs/websockets-wsgi.md.
"""

import os
import socket


class PrefixedSocket(socket.socket):
    """A socket whose first reads return bytes the server received ahead of the app.

    ``select``/``selectors`` look at the descriptor only: they do not see these bytes, so
    an app that waits for readability before its first ``recv`` may wait for the client's
    next bytes. simple-websocket reads first (it selects only with ``ping_interval``).
    """

    def __init__(self, fileno: int, early: bytes):
        super().__init__(fileno=fileno)
        self._early = early

    def recv(self, bufsize, flags=0):
        if self._early and not flags & socket.MSG_PEEK:
            data, self._early = self._early[:bufsize], self._early[bufsize:]
            return data
        if self._early:
            return self._early[:bufsize]
        return super().recv(bufsize, flags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        if not self._early:
            return super().recv_into(buffer, nbytes, flags)
        view = memoryview(buffer).cast("B")
        n = min(len(self._early), nbytes or len(view), len(view))
        view[:n] = self._early[:n]
        if not flags & socket.MSG_PEEK:
            self._early = self._early[n:]
        return n

    def pending(self) -> int:
        """Bytes received ahead of the app and not yet read (0 once read)."""
        return len(self._early)


def adopt(fileno: int, early: bytes) -> socket.socket:
    """The app's socket over ``fileno`` (the worker's duplicate, owned from here on): in
    the mode a new socket starts in (blocking, or ``socket.getdefaulttimeout()``), which
    is also the worker's descriptor's mode until the app returns (they share it)."""
    try:
        sock = PrefixedSocket(fileno, early) if early else socket.socket(fileno=fileno)
    except BaseException:
        os.close(fileno)
        raise
    sock.settimeout(socket.getdefaulttimeout())
    return sock
