"""The error and access logs through Python's ``logging``, when the config asks for it.

gunicorn's logger object (``gunicorn.glogging.Logger``, or ``logger_class``) owns both of
its logs: the ``gunicorn.error`` and ``gunicorn.access`` loggers, set up from
``--error-logfile``, ``--access-logfile`` and then ``logconfig_dict``, ``--log-config-json``
or ``--log-config`` merged over gunicorn's defaults. :class:`Logger` here does what
gunicorn 27's does, line for line where it matters (its syslog handler included), so
a dictConfig written for gunicorn routes the same records with the same names, levels,
messages and ``args``. The Rust side (``src/pylog.rs``) calls :func:`setup` once in the
master, then :func:`log` for each error log line and :func:`access` for each response.

Without any of those settings :func:`setup` returns ``None`` and ferricorn keeps its
native logs, with no Python call per request.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import importlib
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import threading
import time
import traceback

from ferricorn import _config

# gunicorn's glogging.CONFIG_DEFAULTS: what a logging config is merged over (top-level
# keys replace these, as gunicorn's dict.update does).
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        }
    },
}

# gunicorn's glogging.SYSLOG_FACILITIES.
SYSLOG_FACILITIES = {
    "auth": 4,
    "authpriv": 10,
    "cron": 9,
    "daemon": 3,
    "ftp": 11,
    "kern": 0,
    "lpr": 6,
    "mail": 2,
    "news": 7,
    "security": 4,
    "syslog": 5,
    "user": 1,
    "uucp": 8,
    **{f"local{n}": 16 + n for n in range(8)},
}


def parse_syslog_address(addr):
    """gunicorn's ``parse_syslog_address``: (socket type, address) for ``SysLogHandler``."""
    if addr.startswith("unix://"):
        parts = addr.split("#", 1)
        sock_type = socket.SOCK_DGRAM if len(parts) == 2 and parts[1] == "dgram" else None
        return (sock_type, parts[0].split("unix://")[1])
    scheme, _, addr = addr.partition("://")
    socktype = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
    if "[" in addr and "]" in addr:
        host = addr.split("]")[0][1:].lower()
    elif ":" in addr:
        host = addr.split(":")[0].lower()
    else:
        host = addr.lower() or "localhost"
    addr = addr.split("]")[-1]
    port = int(addr.split(":", 1)[1]) if ":" in addr else 514
    return (socktype, (host, port))


DEFAULT_CLASSES = (None, "", "simple", "gunicorn.glogging.Logger")


class Config:
    """The ``cfg`` a gunicorn Logger reads: the logging settings under gunicorn's names.
    A setting ferricorn does not have reads as gunicorn's default."""

    statsd_host = None
    statsd_prefix = ""
    dogstatsd_tags = ""
    enable_backlog_metric = False

    def __init__(self, settings: dict):
        self.loglevel = settings["loglevel"]
        self.errorlog = settings["errorlog"]
        self.accesslog = settings["accesslog"]
        self.access_log_format = settings["access_log_format"]
        self.capture_output = settings["capture_output"]
        self.logconfig = settings["logconfig"]
        self.logconfig_json = settings["logconfig_json"]
        self.logconfig_dict = _config.objects.get("logconfig_dict") or {}
        self.logger_class = _config.objects.get("logger_class") or settings["logger_class"]
        user, group = settings["user"], settings["group"]
        self.user = os.geteuid() if user is None else user
        self.group = os.getegid() if group is None else group
        self.proc_name = settings["proc_name"]
        self.syslog = settings.get("syslog", False)
        self.syslog_addr = settings.get("syslog_addr", "udp://localhost:514")
        self.syslog_prefix = settings.get("syslog_prefix")
        self.syslog_facility = settings.get("syslog_facility", "user")
        self.disable_redirect_access_to_syslog = settings.get(
            "disable_redirect_access_to_syslog", False
        )

    def __getattr__(self, name):
        # Settings a custom Logger may read that are not about logging: none of ours.
        raise AttributeError(f"ferricorn's cfg has no setting {name!r} for a Logger")


class SafeAtoms(dict):
    """gunicorn's: ``"`` escaped in strings, a missing atom is ``-``."""

    def __init__(self, atoms):
        # The dict gunicorn's loop of item assignments builds, in one comprehension.
        escaped = {k: v.replace('"', '\\"') if isinstance(v, str) else v for k, v in atoms.items()}
        dict.__init__(self, escaped)

    def __getitem__(self, k):
        if k.startswith("{"):
            kl = k.lower()
            if kl in self:
                return super().__getitem__(kl)
            return "-"
        if k in self:
            return super().__getitem__(k)
        return "-"


def loggers():
    """Every logger that exists."""
    root = logging.root
    return [logging.getLogger(name) for name in list(root.manager.loggerDict)]


class Logger:
    """gunicorn 27's ``glogging.Logger``: the same loggers, handlers (syslog's too),
    levels and records."""

    LOG_LEVELS = {
        "critical": logging.CRITICAL,
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }
    loglevel = logging.INFO

    error_fmt = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    datefmt = r"[%Y-%m-%d %H:%M:%S %z]"

    access_fmt = "%(message)s"
    syslog_fmt = "[%(process)d] %(message)s"

    atoms_wrapper_class = SafeAtoms

    def __init__(self, cfg):
        self.error_log = logging.getLogger("gunicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_log.propagate = False
        self.error_handlers = []
        self.access_handlers = []
        self.logfile = None
        self.lock = threading.Lock()
        self.cfg = cfg
        self.setup(cfg)

    def setup(self, cfg):
        self.cfg = cfg
        self._access_log_enabled = self._compute_access_log_enabled()
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                if getattr(handler, "_gunicorn", False):
                    log.removeHandler(handler)
        # --capture-output is the native side's (it also reopens stdout and stderr on USR1).
        self._set_handler(
            self.error_log, cfg.errorlog, logging.Formatter(self.error_fmt, self.datefmt)
        )
        if cfg.accesslog is not None:
            self._set_handler(
                self.access_log,
                cfg.accesslog,
                fmt=logging.Formatter(self.access_fmt),
                stream=sys.stdout,
            )
        if cfg.syslog:
            self._set_syslog_handler(self.error_log, cfg, self.syslog_fmt, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._set_syslog_handler(self.access_log, cfg, self.syslog_fmt, "access")
        if cfg.logconfig_dict:
            config = copy.deepcopy(CONFIG_DEFAULTS)
            config.update(cfg.logconfig_dict)
            logging.config.dictConfig(config)
        elif cfg.logconfig_json:
            config = copy.deepcopy(CONFIG_DEFAULTS)
            if os.path.exists(cfg.logconfig_json):
                with open(cfg.logconfig_json) as f:
                    config.update(json.load(f))
                logging.config.dictConfig(config)
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError(f"Error: log config '{cfg.logconfig}' not found")
            defaults = CONFIG_DEFAULTS.copy()
            defaults["__file__"] = cfg.logconfig
            defaults["here"] = os.path.dirname(cfg.logconfig)
            logging.config.fileConfig(cfg.logconfig, defaults, disable_existing_loggers=False)

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        if isinstance(lvl, str):
            lvl = self.LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    def atoms(self, resp, req, environ, request_time):
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": getattr(resp, "sent", None) is not None and str(resp.sent) or "-",
            "B": getattr(resp, "sent", None),
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": request_time.seconds,
            "D": (request_time.seconds * 1000000) + request_time.microseconds,
            "M": (request_time.seconds * 1000) + int(request_time.microseconds / 1000),
            "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            "p": f"<{os.getpid()}>",
        }
        req_headers = req.headers if hasattr(req, "headers") else req
        if hasattr(req_headers, "items"):
            req_headers = req_headers.items()
        atoms.update({f"{{{k.lower()}}}i": v for k, v in req_headers})
        resp_headers = resp.headers
        if hasattr(resp_headers, "items"):
            resp_headers = resp_headers.items()
        atoms.update({f"{{{k.lower()}}}o": v for k, v in resp_headers})
        atoms.update({f"{{{k.lower()}}}e": v for k, v in environ.items()})
        return atoms

    @property
    def access_log_enabled(self):
        try:
            return self._access_log_enabled
        except AttributeError:
            return self._compute_access_log_enabled()

    def _compute_access_log_enabled(self):
        cfg = self.cfg
        return bool(
            cfg.accesslog
            or cfg.logconfig
            or cfg.logconfig_dict
            or cfg.logconfig_json
            or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
        )

    def _set_syslog_handler(self, log, cfg, fmt, name):
        # gunicorn's, whose settings the Rust side has already checked.
        prefix = cfg.syslog_prefix or cfg.proc_name.replace(":", ".")
        fmt = logging.Formatter(f"gunicorn.{prefix}.{name}: {fmt}")
        facility = SYSLOG_FACILITIES[cfg.syslog_facility.lower()]
        socktype, addr = parse_syslog_address(cfg.syslog_addr)
        h = logging.handlers.SysLogHandler(address=addr, facility=facility, socktype=socktype)
        h.setFormatter(fmt)
        h._gunicorn = True
        log.addHandler(h)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        safe_atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        try:
            self.access_log.info(self.cfg.access_log_format, safe_atoms)
        except Exception:  # noqa: BLE001 - as gunicorn: a bad format is logged, not raised
            self.error(traceback.format_exc())

    def now(self):
        return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")

    def reopen_files(self):
        for log in loggers():
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.acquire()
                    try:
                        if handler.stream:
                            handler.close()
                            handler.stream = handler._open()
                    finally:
                        handler.release()

    def close_on_exec(self):
        for log in loggers():
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler) and handler.stream:
                    os.set_inheritable(handler.stream.fileno(), False)

    def _get_gunicorn_handler(self, log):
        for h in log.handlers:
            if getattr(h, "_gunicorn", False):
                return h
        return None

    def _set_handler(self, log, output, fmt, stream=None):
        h = self._get_gunicorn_handler(log)
        if h:
            log.handlers.remove(h)
        if output is not None:
            if output == "-":
                h = logging.StreamHandler(stream)
            else:
                h = logging.FileHandler(output)
                try:
                    os.chown(h.baseFilename, self.cfg.user, self.cfg.group)
                except OSError:
                    pass
            h.setFormatter(fmt)
            h._gunicorn = True
            log.addHandler(h)

    def _get_user(self, environ):
        user = None
        http_auth = environ.get("HTTP_AUTHORIZATION")
        if http_auth and http_auth.lower().startswith("basic"):
            auth = http_auth.split(" ", 1)
            if len(auth) == 2:
                try:
                    auth = base64.b64decode(auth[1].strip().encode("utf-8"))
                    user = auth.split(b":", 1)[0].decode("UTF-8")
                except (TypeError, binascii.Error, UnicodeDecodeError) as exc:
                    self.debug("Couldn't get username: %s", exc)
        return user


class Response:
    """What gunicorn's ``resp`` gives a Logger: ``status`` (``"200 OK"``), ``headers`` (the
    app's, as ``(name, value)`` pairs) and ``sent`` (body bytes)."""

    __slots__ = ("status", "headers", "sent")

    def __init__(self, status, headers, sent):
        self.status = status
        self.headers = headers
        self.sent = sent

    @property
    def status_code(self):
        return int(self.status.split(None, 1)[0])


class Request:
    """What gunicorn's ``req`` gives a Logger: ``headers`` as ``(NAME, value)`` pairs, names
    upper-case, and the request line's parts."""

    __slots__ = ("headers", "_environ")

    def __init__(self, headers, environ):
        self.headers = headers
        self._environ = environ

    method = property(lambda self: self._environ.get("REQUEST_METHOD"))
    uri = property(lambda self: self._environ.get("RAW_URI"))
    path = property(lambda self: self._environ.get("PATH_INFO"))
    query = property(lambda self: self._environ.get("QUERY_STRING"))
    scheme = property(lambda self: self._environ.get("wsgi.url_scheme"))

    @property
    def version(self):
        protocol = self._environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol.partition("/")[2].partition(".")
        return (int(major or 1), int(minor or 0))

    @property
    def remote_addr(self):
        return self._environ.get("REMOTE_ADDR")


#: The logger object, once :func:`setup` built one.
logger = None


def setup(settings: dict) -> int | None:
    """Builds the logger object if the config asks for Python logging and returns the
    ``gunicorn.error`` logger's effective level (the Rust side drops lines below it);
    ``None`` leaves the native logs in charge."""
    global logger
    cfg = Config(settings)
    custom = cfg.logger_class not in DEFAULT_CLASSES
    if not (custom or cfg.logconfig_dict or cfg.logconfig_json or cfg.logconfig):
        return None
    try:
        cls = _load_class(cfg.logger_class) if custom else Logger
        logger = cls(cfg)
        logger.close_on_exec()
    except Exception as exc:  # noqa: BLE001 - one line for the operator, as a config error
        raise _config.ConfigError(f"logging configuration failed: {exc}") from None
    error_log = getattr(logger, "error_log", None)
    return error_log.getEffectiveLevel() if error_log is not None else logging.DEBUG


def _load_class(spec):
    """``pkg.mod.Class`` (gunicorn's ``util.load_class``), ``pkg.mod:Class``, or a class."""
    if isinstance(spec, type):
        return spec
    module, sep, name = spec.rpartition(":") if ":" in spec else spec.rpartition(".")
    if not sep or not module:
        raise ImportError(f"logger_class {spec!r} is not pkg.module.Class")
    return getattr(importlib.import_module(module), name)


def log(level: str, message: str) -> None:
    """One error log line, through the logger object's method for its level."""
    getattr(logger, level)(message)


def access(status, headers, sent, request_headers, environ, micros) -> None:
    """One response, to the logger object's ``access``."""
    request_time = datetime.timedelta(microseconds=micros)
    logger.access(
        Response(status, headers, sent), Request(request_headers, environ), environ, request_time
    )


def app_error(request: str, exc: BaseException) -> None:
    """An app's exception, as gunicorn's workers log it (``request`` is ``GET /path``)."""
    method, _, uri = request.partition(" ")
    if uri:
        logger.exception("Error handling request %s %s", method, uri, exc_info=exc)
    else:
        logger.exception("Error handling request %s", request, exc_info=exc)


def reopen() -> None:
    """USR1: the logger object's ``reopen_files``."""
    logger.reopen_files()
