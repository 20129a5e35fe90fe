"""``--request-timeout`` on the asgi worker: a request whose task still runs when the
deadline passes is cancelled, as the WSGI workers raise ``RequestTimeout`` in the thread
of theirs (``src/worker/deadline.rs``). The same answer as there: a 504 when no response
had started, else the connection closes (the client cannot tell where the body would have
ended); the same two error-log lines: ``REQUEST TIMEOUT ...`` with the task's stack in
place of the thread's, then ``Error handling request ...`` with the traceback of the
exception about to land (``CancelledError`` where ``RequestTimeout`` lands on WSGI), so
statsd counts what it counts there (``gunicorn.log.error``, ``gunicorn.log.exception``).
The access log, statsd and ``--metrics-bind`` count the 504 as any other response.

Cancelling is what asyncio has for it: the ``CancelledError`` lands at the task's next
``await``. A coroutine that blocks the loop itself (``time.sleep``) never gets there;
the loop's heartbeat stops and ``--timeout`` replaces the worker, as for a thread stuck
in one C call.
"""

from __future__ import annotations

import time
import traceback

from ferricorn import _ferricorn


def load(seconds: float | None, loop, server) -> Deadline | None:
    """The deadline for this worker's requests; ``None`` when the setting is off."""
    return Deadline(seconds, loop, server) if seconds else None


class Deadline:
    """Arms a timer per request (a heap entry on the loop) and fires it."""

    __slots__ = ("seconds", "loop", "server")

    def __init__(self, seconds: float, loop, server):
        self.seconds = seconds
        self.loop = loop
        self.server = server

    def arm(self, cycle):
        """The timer for ``cycle``'s request; cancel it when the request's call ends."""
        return self.loop.call_later(self.seconds, self.expire, cycle, time.monotonic())

    def expire(self, cycle, started: float) -> None:
        task = cycle.task
        if task is None or task.done():
            return
        scope = cycle.scope
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        request = f"{scope['method']} {target}"
        stack = stack_of(task)
        _ferricorn.log(
            "error",
            f"REQUEST TIMEOUT {request} after {time.monotonic() - started:.1f}s "
            f"(--request-timeout {self.seconds:g}s): cancelling its task\n"
            f"Stack (most recent call last):\n{stack}",
        )
        _ferricorn.log_exception(
            f"Error handling request {request}\nTraceback (most recent call last):\n"
            f"{stack}\nasyncio.exceptions.CancelledError: --request-timeout"
        )
        cycle.worker.answer(self.server.timed_out(cycle.ident))
        task.cancel()


def stack_of(task) -> str:
    """The frames ``task`` is suspended in, outermost first, as a traceback shows them:
    its coroutine, then each one it awaits (``Task.get_stack`` gives the first only)."""
    frames = []
    awaited = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "".join(traceback.format_list(traceback.StackSummary.extract(frames))).rstrip()
