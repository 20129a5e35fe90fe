"""The asgi worker's Python side: the asyncio loop that runs the app's coroutines.

The sockets are Rust's (``ferricorn._ferricorn.AsgiServer``): its descriptor is an
asyncio reader, and each time it is readable ``events()`` hands over what happened as
``(kind, id, scope, body, more)`` tuples. Each request becomes a task running the app
with a ``receive`` and a ``send`` that talk to the server by the request's id.
See docs/asgi.md.
"""

import asyncio
import collections
import traceback

from ferricorn import _asgi_deadline, _asgi_hooks, _ferricorn

REQUEST, BODY, DISCONNECT, DRAINED, WEBSOCKET, MESSAGE, CLOSED = range(7)
#: A server call's answer bits: the response queue is full; events are waiting.
FULL, OWED = 1, 2

#: The messages ``receive()`` returns after the body, once the request is over.
_DISCONNECT = {"type": "http.disconnect"}
#: gunicorn's LifespanManager waits this long for startup and for shutdown.
LIFESPAN_TIMEOUT = 30.0
#: A WebSocket's unread messages past which the socket is no longer read, and half of it,
#: under which reading resumes.
RECEIVE_HIGH_WATER = 32
#: RFC 6455 section 7.4.1: abnormal closure (the connection was lost).
CLOSE_ABNORMAL = 1006
#: gunicorn 27's close for an app that ended without closing an accepted WebSocket.
CLOSE_INTERNAL_ERROR = 1011


class ClientDisconnected(OSError):
    """``websocket.send`` on a WebSocket that is closed (ASGI 2.4: an OSError)."""


def _error(message, *args, exc_info=False, level="error"):
    """A line in ferricorn's error log, with the traceback being handled if asked."""
    text = message % args if args else message
    if exc_info:
        text = f"{text}\n{traceback.format_exc().rstrip()}"
    _ferricorn.log(level, text)


def new_loop(kind):
    """``--asgi-loop``: uvloop when asked (or, with auto, when it imports)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                _error("uvloop not available, falling back to asyncio")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve(server, app, settings):
    """Runs the worker until it stops; returns the process's exit code."""
    loop = new_loop(settings["loop"])
    asyncio.set_event_loop(loop)
    worker = Worker(server, app, loop, settings)
    try:
        return loop.run_until_complete(worker.main())
    finally:
        _cancel_all(loop)
        loop.close()


def _cancel_all(loop):
    """Tasks still running at the end (apps past the graceful timeout) are cancelled."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        gather = asyncio.gather(*pending, return_exceptions=True)
        loop.run_until_complete(asyncio.wait_for(gather, 5.0))


class Worker:
    """One worker's requests in flight, by id, and its lifespan."""

    def __init__(self, server, app, loop, settings):
        self.server = server
        self.app = app
        self.loop = loop
        self.grace = settings["grace"]
        self.lifespan_mode = settings["lifespan"]
        #: The exit code that tells the master not to respawn (gunicorn's WORKER_BOOT_ERROR).
        self.boot_error = settings["boot_error"]
        self.lifespan = None
        #: The lifespan ``state``; each request's scope gets a shallow copy.
        self.state = None
        self.cycles = {}
        #: ``on_ready`` is scheduled: events a server call let through are owed.
        self.owed = False
        #: ``pre_request`` and ``post_request``; ``None`` when neither is defined.
        self.hooks = _asgi_hooks.load(settings["access_log"])
        #: ``--request-timeout``; ``None`` when off.
        self.deadline = _asgi_deadline.load(settings["request_timeout"], self)

    async def main(self):
        if self.lifespan_mode != "off":
            code = await self.start_lifespan()
            if code is not None:
                return code
        fd = self.server.fd()
        if self.deadline is not None:
            self.deadline.start()
        self.loop.add_reader(fd, self.on_ready)
        self.on_ready()
        code = None
        try:
            while code is None:
                await asyncio.sleep(self.server.tick_seconds)
                code = self.server.tick()
        finally:
            self.loop.remove_reader(fd)
            if self.deadline is not None:
                self.deadline.stop()
        for cycle in list(self.cycles.values()):
            cycle.cancel()
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        return code

    async def start_lifespan(self):
        """Startup; the exit code when the worker must not serve."""
        self.state = {}
        self.lifespan = Lifespan(self.app, self.state)
        failure = await self.lifespan.startup()
        if failure is None:
            return None
        reported, message = failure
        self.lifespan = None
        if self.lifespan_mode == "on" or reported:
            _error("ASGI lifespan startup failed: %s", message)
            return self.boot_error
        _error("ASGI lifespan not supported by app: %s", message, level="debug")
        self.state = None
        return None

    def answer(self, flags):
        """A server call's answer: events it let through are fetched soon."""
        if flags & OWED and not self.owed:
            self.owed = True
            self.loop.call_soon(self.on_ready)
        return flags & FULL

    def on_ready(self):
        """The server's descriptor is readable: dispatch what happened. A hot path."""
        self.owed = False
        cycles = self.cycles
        for kind, ident, scope, body, more in self.server.events():
            if kind == REQUEST or kind == WEBSOCKET:
                if self.state is not None:
                    scope["state"] = self.state.copy()
                if kind == REQUEST:
                    cycle = Cycle(self, ident, scope, body, more)
                else:
                    cycle = WebSocket(self, ident, scope)
                cycles[ident] = cycle
                cycle.task = self.loop.create_task(cycle.run())
                continue
            cycle = cycles.get(ident)
            if cycle is None:
                continue
            if kind == MESSAGE:
                cycle.message(scope)
            elif kind == BODY:
                cycle.feed(body, more)
            elif kind == DISCONNECT:
                cycle.disconnected()
            elif kind == DRAINED:
                cycle.drained()
            elif kind == CLOSED:
                cycle.closed(scope, more)


class _Task:
    """What an HTTP request and a WebSocket share: the app's task, and the future a
    ``send()`` waits on while the socket drains."""

    __slots__ = ()

    def drained(self):
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def cancel(self):
        if self.task is not None and not self.task.done():
            self.task.cancel()


class Cycle(_Task):
    """One HTTP request: the app's ``receive`` and ``send``."""

    __slots__ = (
        "worker",
        "ident",
        "scope",
        "body",
        "more",
        "waiter",
        "drain",
        "started",
        "complete",
        "gone",
        "task",
        "born",
    )

    def __init__(self, worker, ident, scope, body, more):
        self.worker = worker
        self.ident = ident
        self.scope = scope
        #: Body received and not yet handed to the app; ``None`` once handed.
        self.body = body
        self.more = more
        #: The future a ``receive()`` waits on.
        self.waiter = None
        #: The future a ``send()`` waits on while the socket drains.
        self.drain = None
        self.started = False
        self.complete = False
        self.gone = False
        self.task = None
        #: When the app got the request (``loop.time()``), for ``--request-timeout``.
        self.born = None

    async def run(self):
        worker = self.worker
        hooks = worker.hooks
        hooked = None if hooks is None else hooks.exchange(self.ident, self.scope, self.send)
        if worker.deadline is not None:
            self.born = worker.loop.time()
        try:
            if hooked is not None:
                await hooked.pre_request()
            await worker.app(self.scope, self.receive, self.send if hooked is None else hooked.send)
        except asyncio.CancelledError:
            pass
        except BaseException:
            if not self.complete and not self.gone:
                _error("Error in ASGI application", exc_info=True)
                worker.answer(worker.server.fail(self.ident))
        else:
            if not self.started and not self.gone:
                _error("ASGI application returned without sending a response")
                worker.answer(worker.server.fail(self.ident))
            elif not self.complete and not self.gone:
                _error(
                    "ASGI application returned without completing the response; "
                    "closing the connection"
                )
                worker.answer(worker.server.fail(self.ident))
        finally:
            worker.cycles.pop(self.ident, None)
            if hooked is not None:
                hooked.post_request()

    async def receive(self):
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": self.more}
        if self.gone or self.complete:
            return _DISCONNECT
        self.waiter = self.worker.loop.create_future()
        if self.more:
            self.worker.answer(self.worker.server.pull(self.ident))
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def feed(self, body, more):
        self.more = more
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result({"type": "http.request", "body": body, "more_body": more})
        else:
            self.body = body

    def disconnected(self):
        """The client went away: ``receive()`` says so; the grace period, then cancel."""
        self.gone = True
        self._wake(_DISCONNECT)
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        task = self.task
        if task is not None and not task.done():
            if self.worker.grace > 0:
                self.worker.loop.call_later(self.worker.grace, task.cancel)
            else:
                task.cancel()

    def _wake(self, message):
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    async def send(self, message):
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response's end")
            more = message.get("more_body", False)
            if self.gone:
                return
            if not more:
                self.complete = True
            worker = self.worker
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = bytes(body)
            if worker.answer(worker.server.body(self.ident, body, more)):
                self.drain = self.worker.loop.create_future()
                await self.drain
                self.drain = None
            if not more:
                self._wake(_DISCONNECT)
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            if self.gone:
                return
            status, headers = message["status"], message.get("headers", ())
            try:
                flags = self.worker.server.start(self.ident, status, headers)
            except TypeError:
                # Pairs as lists, bytearrays: what the spec's "iterable of [name, value]"
                # allows beyond tuples of bytes.
                headers = [(bytes(n), bytes(v)) for n, v in headers]
                flags = self.worker.server.start(self.ident, status, headers)
            self.worker.answer(flags)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http scope")


class WebSocket(_Task):
    """One WebSocket (the ``websocket`` scope): frames are Rust's, whole messages here."""

    __slots__ = (
        "worker",
        "ident",
        "scope",
        "inbox",
        "waiter",
        "drain",
        "accepted",
        "close_sent",
        "ended",
        "paused",
        "reply_due",
        "task",
    )

    def __init__(self, worker, ident, scope):
        self.worker = worker
        self.ident = ident
        self.scope = scope
        #: Events for ``receive()``, oldest first; the close event comes last.
        self.inbox = collections.deque(({"type": "websocket.connect"},))
        self.waiter = None
        self.drain = None
        self.accepted = False
        #: The app sent ``websocket.close`` (or was refused): nothing more goes out.
        self.close_sent = False
        #: The ``websocket.disconnect`` event, once the socket is closed.
        self.ended = None
        #: Rust stopped reading the socket until the app catches up.
        self.paused = False
        #: A protocol error failed the socket: Rust sends the close frame once the app has
        #: heard it, after the app's replies to the messages before it.
        self.reply_due = False
        self.task = None

    async def run(self):
        worker = self.worker
        failed = False
        try:
            await worker.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            pass
        except ClientDisconnected:
            _error("WebSocket closed while the application was sending", level="debug")
        except BaseException:
            failed = True
            _error("Error in WebSocket ASGI application", exc_info=True)
        finally:
            worker.cycles.pop(self.ident, None)
        self.reply()
        if self.ended is None and not self.close_sent:
            # As gunicorn 27: refused with 403 (500 if the app raised) before accept, and
            # closed with 1011 after.
            if not self.accepted:
                code = 500 if failed else 403
            else:
                code = CLOSE_INTERNAL_ERROR
            worker.answer(worker.server.close(self.ident, code, "Application error"))

    async def receive(self):
        inbox = self.inbox
        if inbox:
            event = inbox.popleft()
            if self.paused and len(inbox) <= RECEIVE_HIGH_WATER // 2:
                self.paused = False
                self.worker.answer(self.worker.server.flow(self.ident, False))
            return event
        if self.ended is not None:
            self.reply()
            return self.ended
        self.waiter = self.worker.loop.create_future()
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def message(self, event):
        """A message from the client. A hot path."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
            return
        inbox = self.inbox
        inbox.append(event)
        if not self.paused and len(inbox) > RECEIVE_HIGH_WATER:
            self.paused = True
            self.worker.answer(self.worker.server.flow(self.ident, True))

    def closed(self, event, reply_due=False):
        """The close handshake ended, the client broke it off, or broke the protocol
        (``reply_due``: our close frame waits for the app to hear of it)."""
        if self.ended is None:
            self.ended = event
            self.reply_due = reply_due
        self.drained()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self.ended)
            self.reply()

    def reply(self):
        """The app has heard of a failure (or is done): Rust sends the close frame."""
        if self.reply_due:
            self.reply_due = False
            self.worker.answer(self.worker.server.close(self.ident, self.ended["code"], ""))

    def disconnected(self):
        """The connection was lost with no close frame."""
        self.closed({"type": "websocket.disconnect", "code": CLOSE_ABNORMAL, "reason": ""})

    async def send(self, message):
        kind = message["type"]
        server = self.worker.server
        if kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            # A failed socket still takes the replies to the messages before the failure.
            if self.close_sent or (self.ended is not None and not self.reply_due):
                raise ClientDisconnected("the WebSocket is closed")
            text = message.get("text")
            if text is not None:
                flags = server.send_text(self.ident, text)
            else:
                data = message.get("bytes")
                if data is None:
                    raise RuntimeError("websocket.send needs text or bytes")
                flags = server.send_bytes(self.ident, data)
            if self.worker.answer(flags):
                self.drain = self.worker.loop.create_future()
                await self.drain
                self.drain = None
        elif kind == "websocket.accept":
            if self.accepted:
                raise RuntimeError("websocket.accept sent twice")
            if self.ended is not None or self.close_sent:
                raise ClientDisconnected("the WebSocket is closed")
            headers = message.get("headers") or []
            headers = [(bytes(n), bytes(v)) for n, v in headers]
            subprotocol = message.get("subprotocol")
            self.worker.answer(server.accept(self.ident, subprotocol, headers))
            self.accepted = True
        elif kind == "websocket.close":
            if self.close_sent or self.ended is not None:
                return self.reply()
            self.close_sent = True
            if self.accepted:
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
            else:
                # ASGI: a close before accept refuses the handshake with HTTP 403.
                code, reason = 403, ""
                self.ended = {"type": "websocket.disconnect", "code": CLOSE_ABNORMAL, "reason": ""}
            self.worker.answer(server.close(self.ident, code, reason))
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in a websocket scope")


class Lifespan:
    """The lifespan scope, as gunicorn 27's LifespanManager runs it."""

    def __init__(self, app, state):
        self.app = app
        self.state = state
        self.queue = asyncio.Queue()
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.failure = None
        self.task = None
        self.done = False

    async def startup(self):
        """``None`` once started; else ``(reported, message)``: reported is True when
        the app sent ``lifespan.startup.failed``."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        await self.queue.put({"type": "lifespan.startup"})
        self.task = asyncio.get_running_loop().create_task(self.run(scope))
        try:
            await asyncio.wait_for(self.started.wait(), LIFESPAN_TIMEOUT)
        except asyncio.TimeoutError:
            self.task.cancel()
            return (False, "Lifespan startup timed out")
        if self.failure is not None:
            self.task.cancel()
            return self.failure
        return None

    async def shutdown(self):
        if self.done:
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self.finished.wait(), LIFESPAN_TIMEOUT)
        except asyncio.TimeoutError:
            _error("Lifespan shutdown timed out")
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self, scope):
        try:
            await self.app(scope, self.queue.get, self.send)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            if not self.started.is_set():
                self.failure = (False, str(e) or type(e).__name__)
            else:
                _error("ASGI lifespan error: %s", e)
        finally:
            self.done = True
            if not self.started.is_set():
                if self.failure is None:
                    self.failure = (False, "Application exited before startup complete")
                self.started.set()
            self.finished.set()

    async def send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failure = (True, message.get("message", ""))
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.finished.set()
        elif kind == "lifespan.shutdown.failed":
            _error("ASGI lifespan shutdown failed: %s", message.get("message", ""))
            self.finished.set()
