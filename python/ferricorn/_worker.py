"""What a worker process needs from Python: the handler that turns the master's timeout
abort (SIGABRT, ``--timeout``) into an exception inside the app, the stack dump that
precedes it, and ``--request-timeout``'s exception and stack report."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import traceback


class WorkerTimeout(BaseException):
    """Raised in the app when the worker stopped answering for longer than ``--timeout``.

    A ``BaseException``, so that an app's ``except Exception`` does not swallow it; the
    server answers the request with 500 and the worker is replaced.
    """


class RequestTimeout(BaseException):
    """Raised in the thread of a request that ran longer than ``--request-timeout``.

    A ``BaseException``, as ``WorkerTimeout`` is, so that an app's ``except Exception``
    does not swallow it and carry on past the deadline; the server answers 504 if no
    header went out yet (else the response is cut off) and the worker lives on.
    """


def _on_abort(signum, frame):
    from ferricorn import _config, _hooks

    if "worker_abort" in _config.hooks:
        _hooks.call("worker_abort", (os.getpid(), 0))
    raise WorkerTimeout("the worker timed out (--timeout) and is being replaced")


def install_abort_handler() -> None:
    signal.signal(signal.SIGABRT, _on_abort)


def install_stack_dump(fd: int, signum: int) -> None:
    """On ``signum`` (which the master sends just before its timeout SIGABRT), every
    thread's Python stack goes to ``fd`` (the error log) from the signal handler itself:
    faulthandler reads the frames without the GIL, so an app thread stuck in C code while
    holding it cannot stop the dump."""
    faulthandler.register(signum, file=fd, all_threads=True, chain=False)


def stack_of(ident: int) -> str:
    """The Python stack of thread ``ident``, most recent call last, as a traceback
    prints it; empty if the thread runs no Python."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame)).rstrip()
