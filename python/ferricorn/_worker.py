"""What a worker process needs from Python: the handler that turns the master's timeout
abort (SIGABRT, ``--timeout``) into an exception inside the app."""

from __future__ import annotations

import os
import signal


class WorkerTimeout(BaseException):
    """Raised in the app when the worker stopped answering for longer than ``--timeout``.

    A ``BaseException``, so that an app's ``except Exception`` does not swallow it; the
    server answers the request with 500 and the worker is replaced.
    """


def _on_abort(signum, frame):
    from ferricorn import _config, _hooks

    if "worker_abort" in _config.hooks:
        _hooks.call("worker_abort", (os.getpid(), 0))
    raise WorkerTimeout("the worker timed out (--timeout) and is being replaced")


def install_abort_handler() -> None:
    signal.signal(signal.SIGABRT, _on_abort)
