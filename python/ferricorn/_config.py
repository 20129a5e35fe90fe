"""The Python side of the settings: gunicorn-style config files, server hooks and Paste.
Python's logging configuration is applied by ``ferricorn._logging``.

The Rust side (``src/config/``) owns every setting it can hold as text; it asks this
module for a config file's values (:func:`read_file`) and keeps hooks, dicts and other
Python objects here, where the code that calls them runs.
"""

from __future__ import annotations

import importlib
import logging
import logging.config
import os
import runpy
import sys
import traceback

# gunicorn's server hooks and how many arguments each takes.
HOOKS = {
    "on_starting": 1,
    "on_reload": 1,
    "when_ready": 1,
    "pre_fork": 2,
    "post_fork": 2,
    "post_worker_init": 1,
    "worker_int": 1,
    "worker_abort": 1,
    "pre_exec": 1,
    "pre_request": 2,
    "post_request": 4,
    "child_exit": 2,
    "worker_exit": 2,
    "nworkers_changed": 3,
    "on_exit": 1,
}

# Every setting gunicorn 27 knows, for the test that keeps docs/migrating.md complete. The
# Rust side (src/config/gunicorn.rs) says which ferricorn lacks and which values of those
# lose nothing when ignored; tests/test_dropin_flags.py checks the two lists agree.
GUNICORN_SETTINGS = frozenset(
    """config wsgi_app bind backlog workers worker_class threads worker_connections
    max_requests max_requests_jitter timeout graceful_timeout keepalive limit_request_line
    limit_request_fields limit_request_field_size reload reload_engine reload_extra_files spew
    check_config print_config preload_app sendfile reuse_port chdir daemon raw_env pidfile
    worker_tmp_dir user group umask initgroups tmp_upload_dir secure_scheme_headers
    forwarded_allow_ips accesslog disable_redirect_access_to_syslog access_log_format errorlog
    loglevel capture_output logger_class logconfig logconfig_dict logconfig_json syslog_addr
    syslog syslog_prefix syslog_facility enable_stdio_inheritance statsd_host dogstatsd_tags
    statsd_prefix enable_backlog_metric proc_name default_proc_name pythonpath paste
    on_starting on_reload when_ready pre_fork post_fork post_worker_init worker_int
    worker_abort pre_exec pre_request post_request child_exit worker_exit nworkers_changed
    on_exit ssl_context proxy_protocol proxy_allow_ips protocol uwsgi_allow_ips keyfile
    certfile ssl_version cert_reqs ca_certs suppress_ragged_eofs do_handshake_on_connect
    ciphers http_protocols http2_cleartext http2_max_concurrent_streams
    http2_initial_window_size http2_max_frame_size http2_max_header_list_size
    raw_paste_global_conf permit_obsolete_folding strip_header_spaces
    permit_unconventional_http_method permit_unconventional_http_version
    casefold_http_method forwarder_headers header_map asgi_loop asgi_lifespan
    asgi_disconnect_grace_period websocket_max_message_size http_parser root_path dirty_apps
    dirty_workers dirty_timeout dirty_threads dirty_graceful_timeout on_dirty_starting
    dirty_post_fork dirty_worker_init dirty_worker_exit control_socket control_socket_mode
    control_socket_disable""".split()
)

# Settings whose value stays a Python object on this side.
PYTHON_VALUED = frozenset({"logconfig_dict"})

#: Hooks the config file defined, by name.
hooks: dict = {}
#: Python-valued settings the config file defined (logconfig_dict, a logger_class class).
objects: dict = {}


class ConfigError(Exception):
    """A config file that cannot be used; the message is one line for the operator."""


def default_file() -> str | None:
    """``./ferricorn.conf.py``, else ``./gunicorn.conf.py``, if either exists."""
    for name in ("ferricorn.conf.py", "gunicorn.conf.py"):
        if os.path.exists(name):
            return name
    return None


def read_file(spec: str, known: list[str]) -> dict:
    """The settings a config file sets: ``known`` ones (every name the Rust side knows,
    gunicorn's settings ferricorn lacks included, which it judges) as values; hooks and
    Python-valued ones kept here. ``None`` means the default, as gunicorn's example config
    writes ``user = None``: such names are left out. Other module-level names (imports,
    helpers) are ignored."""
    namespace = _execute(spec)
    values = {}
    hooks.clear()
    objects.clear()
    for name, value in namespace.items():
        if name.startswith("_") or value is None:
            continue
        if name in HOOKS:
            hooks[name] = _check_hook(name, value)
            if name == "ssl_context":
                # Not a hook ferricorn can call: the Rust side judges it (docs/tls.md).
                values[name] = getattr(value, "__name__", name)
        elif name in PYTHON_VALUED or (name == "logger_class" and isinstance(value, type)):
            objects[name] = value
        elif name in known:
            values[name] = value
    return values


def _execute(spec: str) -> dict:
    # gunicorn puts the working directory on sys.path before it reads the file (its
    # Application.chdir), so a config may import its settings from next to the app.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if spec.startswith("python:"):
            module = importlib.import_module(spec[len("python:") :])
            return dict(vars(module))
        if not os.path.exists(spec):
            raise ConfigError(f"config file {spec!r} does not exist")
        return runpy.run_path(spec, run_name="__config__")
    except ConfigError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's file may raise anything
        raise ConfigError(f"config file {spec!r} failed to load: {_where(exc)}") from None


def _where(exc: BaseException) -> str:
    """The error and the innermost line of the user's code that raised it, in one line."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text
    ours = (os.path.dirname(__file__), "<frozen ")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(ours)]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def _check_hook(name: str, value):
    if not callable(value):
        raise ConfigError(f"config file: {name} must be callable, not {type(value).__name__}")
    return value


def call_hook(name: str, *args) -> None:
    """Runs a hook; one that raises is logged with its traceback and does not stop us."""
    hook = hooks.get(name)
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - a hook's failure must not crash the server
        from ferricorn import _ferricorn

        _ferricorn.log("error", f"Exception in {name} hook:\n{traceback.format_exc().rstrip()}")


def load_paste(path: str, name: str, global_conf: dict):
    """``--paste INI[#name]``: the app through PasteDeploy, after the ini's logging."""
    try:
        from paste.deploy import loadapp
    except ImportError:
        from ferricorn._loader import AppLoadError

        raise AppLoadError("--paste needs PasteDeploy: pip install PasteDeploy") from None
    path = os.path.abspath(path)
    here = os.path.dirname(path)
    if _has_logging_sections(path):
        logging.config.fileConfig(
            path, {"__file__": path, "here": here}, disable_existing_loggers=False
        )
    return loadapp(f"config:{path}", name=name, relative_to=here, global_conf=global_conf)


def _has_logging_sections(path: str) -> bool:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser.has_section("loggers")


def stringify(value) -> list[str]:
    """A config-file value as the command-line strings it stands for."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    if value is None:
        return []
    return [str(value)]


#: Worker classes whose subclasses ``-k`` may name: ferricorn runs its own worker for them
#: (the asgi one), as for the class itself.
MAPPED_WORKERS = ("uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker")


def worker_base(path: str):
    """``-k PATH`` naming a subclass of one of ``MAPPED_WORKERS``: ``(base, kwargs)``, the
    base's path and the subclass's ``CONFIG_KWARGS`` as text; ``None`` for anything else
    (a class that does not import is refused by the Rust side, as before)."""
    module, _, name = path.replace(":", ".").rpartition(".")
    if not module:
        return None
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)  # gunicorn imports worker classes from the working directory
    try:
        cls = getattr(importlib.import_module(module), name)
        bases = cls.__mro__[1:]
    except Exception:
        return None
    finally:
        if added:
            sys.path.remove(here)
    for base in bases:
        full = f"{base.__module__}.{base.__qualname__}"
        if full in MAPPED_WORKERS:
            kwargs = getattr(cls, "CONFIG_KWARGS", None) or {}
            return full, {str(k): str(v) for k, v in kwargs.items()}
    return None
