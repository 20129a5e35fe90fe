"""Logging pieces the Python-logging tests configure on ferricorn and gunicorn alike: a
handler that writes each record as one JSON line, and a gunicorn Logger subclass with its
own ``access``, as projects that ship a ``logger_class`` write them; and an app that
fails."""

from __future__ import annotations

import json
import logging
import os

from gunicorn import glogging


class JsonLinesHandler(logging.Handler):
    """Each record as a JSON line: logger name, level, unformatted ``msg``, the message
    and, for a dict ``args`` (the access log's atoms), its keys."""

    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        line = {
            "name": record.name,
            "level": record.levelname,
            "msg": str(record.msg),
            "message": record.getMessage(),
            "args": sorted(args) if isinstance(args, dict) else None,
            "args_type": type(args).__name__,
            "exc": type(record.exc_info[1]).__name__ if record.exc_info else None,
        }
        with open(self.filename, "a") as f:
            f.write(json.dumps(line) + "\n")


class AccessCountingLogger(glogging.Logger):
    """Writes one line per response to $PYLOG_ACCESS_FILE from its own ``access``, with
    what gunicorn hands it; the rest is gunicorn's Logger."""

    def access(self, resp, req, environ, request_time):
        headers = dict(req.headers)
        line = {
            "status": resp.status,
            "sent": resp.sent,
            "response_headers": [list(h) for h in resp.headers],
            "user_agent": headers.get("USER-AGENT"),
            "path": environ["PATH_INFO"],
            "seconds": request_time.total_seconds() >= 0,
        }
        with open(os.environ["PYLOG_ACCESS_FILE"], "a") as f:
            f.write(json.dumps(line) + "\n")
        super().access(resp, req, environ, request_time)

    def reopen_files(self):
        with open(os.environ["PYLOG_ACCESS_FILE"], "a") as f:
            f.write(json.dumps({"reopened": os.getpid()}) + "\n")
        super().reopen_files()


def failing_app(environ, start_response):
    """Raises before its headers, so both servers log the error and answer 500."""
    raise ValueError(f"failing on {environ['PATH_INFO']}")
