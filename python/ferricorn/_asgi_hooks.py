"""The ``pre_request`` and ``post_request`` server hooks on the asgi worker, as gunicorn
27's ASGI worker calls them (``gunicorn/asgi/protocol.py``, ``_handle_http_request``):

- ``pre_request(worker, req)`` runs in the request's task just before the app. A hook
  that raises is the app failing: ``Error in ASGI application``, a 500, the app not
  called.
- ``post_request(worker, req, environ, resp)`` runs once the app's call is over (its
  response sent, or the call failed or was cancelled). ``environ`` (a few WSGI keys)
  and ``resp`` (``status`` as an int, ``headers`` as text, ``sent``) are only built
  when the access log is on; otherwise both are ``None``, as in gunicorn. A hook that
  raises is logged (``Exception in post_request hook``) and changes nothing.
- ``req`` is gunicorn's ``CallbackRequest``, built from the scope (:class:`Request`).
- ``worker.nr``: the requests before this one, in both hooks (gunicorn counts a request
  once its call is over).
- With ``post_request`` defined, a request's call waits for the call before it on the
  same connection (its app and its ``post_request``), as gunicorn reads the next request
  only then: the hooks of one connection's requests never interleave.

A hook the config file does not define costs nothing: :func:`load` gives ``None`` when
neither is, and the worker then runs the app as it would without hooks.
"""

from __future__ import annotations

import asyncio

from ferricorn import _config, _hooks


def load(access_log: bool) -> Hooks | None:
    """The hooks for this worker's requests, or ``None`` when neither is defined."""
    pre = _config.hooks.get("pre_request")
    post = _config.hooks.get("post_request")
    if pre is None and post is None:
        return None
    return Hooks(pre, post is not None, access_log)


class Hooks:
    """What a request's :class:`Exchange` needs, read once per worker."""

    __slots__ = ("pre", "post", "access_log", "running")

    def __init__(self, pre, post: bool, access_log: bool):
        #: The ``pre_request`` callable, or ``None``.
        self.pre = pre
        #: Whether ``post_request`` is defined (it is called through ``_config``).
        self.post = post
        #: Whether ``post_request`` gets an ``environ`` and a ``resp``.
        self.access_log = access_log
        #: With ``post_request``: each connection's latest call, by the connection's
        #: slot (the high half of a request's id).
        self.running = {}

    def exchange(self, ident: int, scope: dict, send) -> Exchange:
        return Exchange(self, ident >> 32, scope, send)


class Exchange:
    """One request's hooks, and what ``post_request`` is told of its response."""

    __slots__ = (
        "hooks",
        "slot",
        "scope",
        "inner",
        "send",
        "req",
        "worker",
        "nr",
        "status",
        "headers",
        "sent",
    )

    def __init__(self, hooks: Hooks, slot: int, scope: dict, send):
        self.hooks = hooks
        #: The connection's slot.
        self.slot = slot
        self.scope = scope
        #: The connection's own ``send``.
        self.inner = send
        #: The ``send`` the app gets: one that notes the response for ``post_request``'s
        #: ``resp`` when there is one to build, else the connection's own.
        self.send = self._noting if hooks.post and hooks.access_log else send
        self.req = Request(scope)
        #: The hooks' ``worker``, and ``worker.nr`` as both hooks see it.
        self.worker = _hooks._worker_now()
        self.nr = max(self.worker.nr - 1, 0)
        #: The response's status (500 until it starts, as gunicorn's), headers and
        #: body bytes.
        self.status = 500
        self.headers = []
        self.sent = 0

    async def pre_request(self) -> None:
        """Waits for the connection's call before this one (with ``post_request``),
        then calls ``pre_request``; what it raises propagates, failing the request."""
        if self.hooks.post:
            running = self.hooks.running
            before = running.get(self.slot)
            running[self.slot] = asyncio.current_task()
            if before is not None and not before.done():
                await asyncio.wait([before])
        if self.hooks.pre is not None:
            self.worker.nr = self.nr
            self.hooks.pre(self.worker, self.req)

    async def _noting(self, message: dict) -> None:
        """The app's ``send``, noting what ``post_request``'s ``resp`` shows."""
        kind = message.get("type")
        if kind == "http.response.start":
            self.status = message.get("status")
            self.headers = self.framed(list(message.get("headers", ())))
        elif kind == "http.response.body":
            self.sent += len(message.get("body", b""))
        await self.inner(message)

    def framed(self, headers: list) -> list:
        """The headers as gunicorn's ``resp`` shows them: with the ``Transfer-Encoding:
        chunked`` the worker adds to an HTTP/1.1 body of no announced length."""
        try:
            names = {bytes(name).lower() for name, _ in headers}
        except (TypeError, ValueError):
            return headers  # not ASGI's byte pairs: the worker refuses them anyway
        status = self.status if isinstance(self.status, int) else 0
        no_body = self.req.method == "HEAD" or status < 200 or status in (204, 304)
        framed = b"content-length" in names or b"transfer-encoding" in names
        if not framed and not no_body and self.req.version >= (1, 1):
            headers.append((b"transfer-encoding", b"chunked"))
        return headers

    def post_request(self) -> None:
        """Calls ``post_request`` once the app's call is over."""
        if not self.hooks.post:
            return
        running = self.hooks.running
        if running.get(self.slot) is asyncio.current_task():
            del running[self.slot]
        environ = resp = None
        if self.hooks.access_log:
            environ = self.environ()
            resp = Response(self.status, self.headers, self.sent)
        self.worker.nr = self.nr
        _config.call_hook("post_request", self.worker, self.req, environ, resp)

    def environ(self) -> dict:
        """gunicorn's ``_build_environ``: the few keys its access log reads."""
        req = self.req
        client = self.scope.get("client")
        environ = {
            "REQUEST_METHOD": req.method,
            "RAW_URI": req.uri,
            "PATH_INFO": req.path,
            "QUERY_STRING": req.query,
            "SERVER_PROTOCOL": "HTTP/{}.{}".format(*req.version),
            "REMOTE_ADDR": client[0] if client else "-",
        }
        for name, value in req.headers:
            environ["HTTP_" + name.replace("-", "_")] = value
        return environ


class Request:
    """The request as gunicorn 27's ASGI hooks see it (its ``CallbackRequest``):
    ``method``, ``uri`` (the target as sent), ``path`` (percent-decoded), ``query``,
    ``fragment`` (always empty), ``version``, ``headers`` (upper-case names, text),
    ``headers_bytes`` (the scope's), ``scheme``, ``raw_path``, ``content_length``,
    ``chunked``, ``must_close``, ``proxy_protocol_info``, ``should_close()`` and
    ``get_header()``. It has no ``body``, ``remote_addr`` or ``peer_addr``: gunicorn's
    has none either (the app reads the body through ``receive``). As in gunicorn, the
    text headers (and what is read from them) are only built when a hook reads them."""

    __slots__ = (
        "method",
        "raw_path",
        "path",
        "query",
        "uri",
        "fragment",
        "version",
        "headers_bytes",
        "scheme",
        "proxy_protocol_info",
        "_headers",
    )

    def __init__(self, scope: dict):
        self.method = scope["method"]
        self.raw_path = scope["raw_path"]
        self.path = scope["path"]
        self.query = scope["query_string"].decode("latin-1")
        target = self.raw_path.decode("latin-1")
        self.uri = f"{target}?{self.query}" if self.query else target
        self.fragment = ""
        self.version = (1, 0) if scope["http_version"] == "1.0" else (1, 1)
        self.headers_bytes = scope["headers"]
        self.scheme = scope["scheme"]
        self.proxy_protocol_info = None
        self._headers = None

    @property
    def headers(self) -> list:
        headers = self._headers
        if headers is None:
            headers = self._headers = [
                (name.decode("latin-1").upper(), value.decode("latin-1"))
                for name, value in self.headers_bytes
            ]
        return headers

    @headers.setter
    def headers(self, value: list) -> None:
        self._headers = value

    @property
    def content_length(self) -> int:
        length = self.get_header("CONTENT-LENGTH")
        return int(length) if length and length.isdigit() else 0

    @property
    def chunked(self) -> bool:
        coding = (self.get_header("TRANSFER-ENCODING") or "").lower()
        return coding.rstrip(" \t").endswith("chunked")

    @property
    def must_close(self) -> bool:
        return self.should_close()

    def should_close(self) -> bool:
        """gunicorn's: ``Connection`` decides, else the version."""
        connection = self.get_header("CONNECTION")
        if connection is not None:
            value = connection.lower().strip(" \t")
            if value == "close":
                return True
            if value == "keep-alive":
                return False
        return self.version <= (1, 0)

    def get_header(self, name: str):
        name = name.upper()
        for header, value in self.headers:
            if header == name:
                return value
        return None


class Response:
    """``post_request``'s ``resp``: gunicorn's ``ASGIResponseInfo``."""

    def __init__(self, status, headers, sent: int):
        self.status = status
        self.sent = sent
        self.headers = [
            (
                name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else name,
                value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value,
            )
            for name, value in headers
        ]
