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

import traceback

from ferricorn import _ferricorn


def load(seconds: float | None, worker) -> Deadline | None:
    """The deadline for ``worker``'s requests; ``None`` when the setting is off."""
    return Deadline(seconds, worker) if seconds else None


class Deadline:
    """Checks the requests in flight a few times per deadline, as the WSGI workers'
    watchdog does (every quarter of it, between 10 ms and 250 ms): a request costs one
    clock read when it starts (``Cycle.born``), not a timer of its own."""

    __slots__ = ("seconds", "worker", "tick", "handle")

    def __init__(self, seconds: float, worker):
        self.seconds = seconds
        self.worker = worker
        self.tick = min(max(seconds / 4, 0.01), 0.25)
        self.handle = None

    def start(self) -> None:
        """Begins the checks (the loop is running)."""
        self.handle = self.worker.loop.call_later(self.tick, self.check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def check(self) -> None:
        worker = self.worker
        now = worker.loop.time()
        late = [
            c for c in worker.cycles.values() if c.born is not None and now - c.born > self.seconds
        ]
        for cycle in late:
            self.expire(cycle, now - cycle.born)
        self.handle = worker.loop.call_later(self.tick, self.check)

    def expire(self, cycle, running: float) -> None:
        cycle.born = None  # fired once
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
            f"REQUEST TIMEOUT {request} after {running:.1f}s "
            f"(--request-timeout {self.seconds:g}s): cancelling its task\n"
            f"Stack (most recent call last):\n{stack}",
        )
        _ferricorn.log_exception(
            f"Error handling request {request}\nTraceback (most recent call last):\n"
            f"{stack}\nasyncio.exceptions.CancelledError: --request-timeout"
        )
        self.worker.answer(self.worker.server.timed_out(cycle.ident))
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
