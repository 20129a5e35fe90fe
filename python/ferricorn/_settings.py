"""``server.cfg`` as hooks see it: gunicorn 27's ``Config``, with its names, types and
properties.

Hooks read ``cfg.workers``, ``cfg.bind``, ``cfg.worker_class_str``,
``cfg.settings["workers"].value``... A setting the command line or config file gave takes
its value from there, converted to the type gunicorn's validator gives it; one left unset
reads as gunicorn's default (the table below, from gunicorn 27's ``config.py``), except
the ones ferricorn works out itself (workers from ``$WEB_CONCURRENCY``, binds from
``$PORT``, the worker ``--threads`` selects), which read as serving uses them.
"""

from __future__ import annotations

import os
import ssl

# gunicorn 27's settings that are not hooks, in its order, with the value a default
# ``Config`` gives them. Computed at start: chdir (cwd), user, group (the process's).
DEFAULTS: dict = {
    "config": "./gunicorn.conf.py",
    "wsgi_app": None,
    "bind": ["127.0.0.1:8000"],
    "backlog": 2048,
    "workers": 1,
    "worker_class": "sync",
    "threads": 1,
    "worker_connections": 1000,
    "max_requests": 0,
    "max_requests_jitter": 0,
    "timeout": 30,
    "graceful_timeout": 30,
    "keepalive": 2,
    "limit_request_line": 4094,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
    "reload": False,
    "reload_engine": "auto",
    "reload_extra_files": [],
    "spew": False,
    "check_config": False,
    "print_config": False,
    "preload_app": False,
    "sendfile": None,
    "reuse_port": False,
    "chdir": None,
    "daemon": False,
    "raw_env": [],
    "pidfile": None,
    "worker_tmp_dir": None,
    "user": None,
    "group": None,
    "umask": 0,
    "initgroups": False,
    "tmp_upload_dir": None,
    "secure_scheme_headers": {
        "X-FORWARDED-PROTOCOL": "ssl",
        "X-FORWARDED-PROTO": "https",
        "X-FORWARDED-SSL": "on",
    },
    "forwarded_allow_ips": ["127.0.0.1", "::1"],
    "accesslog": None,
    "disable_redirect_access_to_syslog": False,
    "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    "errorlog": "-",
    "loglevel": "info",
    "capture_output": False,
    "logger_class": "gunicorn.glogging.Logger",
    "logconfig": None,
    "logconfig_dict": {},
    "logconfig_json": None,
    "syslog_addr": "udp://localhost:514",
    "syslog": False,
    "syslog_prefix": None,
    "syslog_facility": "user",
    "enable_stdio_inheritance": False,
    "statsd_host": None,
    "dogstatsd_tags": "",
    "statsd_prefix": "",
    "enable_backlog_metric": False,
    "proc_name": None,
    "default_proc_name": "gunicorn",
    "pythonpath": None,
    "paste": None,
    "proxy_protocol": "off",
    "proxy_allow_ips": ["127.0.0.1", "::1"],
    "protocol": "http",
    "uwsgi_allow_ips": ["127.0.0.1", "::1"],
    "keyfile": None,
    "certfile": None,
    "ssl_version": ssl.PROTOCOL_TLS,
    "cert_reqs": 0,
    "ca_certs": None,
    "suppress_ragged_eofs": True,
    "do_handshake_on_connect": False,
    "ciphers": None,
    "http_protocols": ["h1"],
    "http2_cleartext": "off",
    "http2_max_concurrent_streams": 100,
    "http2_initial_window_size": 65535,
    "http2_max_frame_size": 16384,
    "http2_max_header_list_size": 65536,
    "raw_paste_global_conf": [],
    "permit_obsolete_folding": False,
    "strip_header_spaces": False,
    "permit_unconventional_http_method": False,
    "permit_unconventional_http_version": False,
    "casefold_http_method": False,
    "forwarder_headers": ["SCRIPT_NAME", "PATH_INFO"],
    "header_map": "drop",
    "asgi_loop": "auto",
    "asgi_lifespan": "auto",
    "asgi_disconnect_grace_period": 3,
    "websocket_max_message_size": 16777216,
    "http_parser": "auto",
    "root_path": "",
    "dirty_apps": [],
    "dirty_workers": 0,
    "dirty_timeout": 300,
    "dirty_threads": 1,
    "dirty_graceful_timeout": 30,
    "control_socket": "~/.gunicorn/gunicorn.ctl",
    "control_socket_mode": 0o600,
    "control_socket_disable": False,
}

# gunicorn's hooks (and the ones of features ferricorn lacks): ``cfg.NAME`` is a callable.
HOOK_SETTINGS = (
    "on_starting on_reload when_ready pre_fork post_fork post_worker_init worker_int "
    "worker_abort pre_exec pre_request post_request child_exit worker_exit "
    "nworkers_changed on_exit ssl_context on_dirty_starting dirty_post_fork "
    "dirty_worker_init dirty_worker_exit"
).split()

# Settings gunicorn holds as a list but that are written as one comma-separated string.
_COMMA_LISTS = frozenset(
    {"forwarded_allow_ips", "proxy_allow_ips", "uwsgi_allow_ips", "forwarder_headers"}
)


def _noop(*_args) -> None:
    """gunicorn's default for a hook the config file does not define."""


class Setting:
    """One entry of ``cfg.settings``: gunicorn's ``Setting`` as hooks read it."""

    def __init__(self, name: str, value):
        self.name = name
        self.value = value
        self.default = DEFAULTS.get(name)

    def get(self):
        return self.value

    def set(self, value) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<Setting {self.name}={self.value!r}>"


# gunicorn's ``validate_proxy_protocol``: each spelling of a mode, as it normalizes it.
_PROXY_MODES = {
    **dict.fromkeys(("false", "off", "0", "none"), "off"),
    **dict.fromkeys(("true", "auto", "1"), "auto"),
    "v1": "v1",
    "v2": "v2",
}


def _coerce(name: str, value):
    """A value from ferricorn's settings (text, number, list), in the type gunicorn's
    validator gives the setting."""
    default = DEFAULTS.get(name)
    if name == "proxy_protocol":
        return _PROXY_MODES.get(str(value).strip().lower(), value)
    if value is None or isinstance(default, type(None)):
        return value
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int):
        for base in (0, 8):  # "022", gunicorn's auto_int, is octal
            try:
                return int(str(value), base)
            except ValueError:
                continue
        return value
    if isinstance(default, list):
        items = value if isinstance(value, list) else [value]
        if name in _COMMA_LISTS:
            items = [part.strip() for item in items for part in str(item).split(",")]
            items = [part for part in items if part]
        return items
    if isinstance(default, dict):
        # A config file's dict reaches ferricorn as KEY=VALUE texts.
        items = value if isinstance(value, list) else [value]
        if all(isinstance(item, str) and "=" in item for item in items):
            return dict(item.split("=", 1) for item in items)
        return {}  # `secure_scheme_headers = {}`: ferricorn's "none trusted" marker
    return value


class Config:
    """gunicorn's ``Config``: ``cfg.NAME`` reads a setting's value; the properties are
    gunicorn's (``address``, ``worker_class_str``, ``uid``, ``proc_name``, ``env``...)."""

    def __init__(self, values: dict, hooks: dict):
        defaults = dict(DEFAULTS)
        defaults["chdir"] = os.getcwd()
        defaults["user"] = os.geteuid()
        defaults["group"] = os.getegid()
        defaults["control_socket"] = os.path.expanduser(DEFAULTS["control_socket"])
        settings = {name: Setting(name, value) for name, value in defaults.items()}
        for name, value in values.items():
            settings[name] = Setting(name, _coerce(name, value))
        for name in HOOK_SETTINGS:
            settings[name] = Setting(name, hooks.get(name, _noop))
        object.__setattr__(self, "settings", settings)

    def __getattr__(self, name):
        if name not in self.settings:
            raise AttributeError(f"No configuration setting for: {name}")
        return self.settings[name].get()

    def set(self, name: str, value) -> None:
        if name not in self.settings:
            raise AttributeError(f"No configuration setting for: {name}")
        self.settings[name].set(value)

    @property
    def worker_class_str(self) -> str:
        uri = self.settings["worker_class"].get()
        if (uri == "sync" or uri.endswith("SyncWorker")) and self.threads > 1:
            return "gthread"
        return uri

    @property
    def worker_class(self) -> type:
        """The class of ``worker`` (gunicorn loads the worker class named)."""
        from ferricorn import _hooks

        return _hooks.Worker

    @property
    def logger_class(self) -> type:
        from ferricorn import _hooks

        return _hooks.Log

    @property
    def address(self) -> list:
        return [parse_address(bind) for bind in self.settings["bind"].get()]

    @property
    def uid(self) -> int:
        return self.settings["user"].get()

    @property
    def gid(self) -> int:
        return self.settings["group"].get()

    @property
    def proc_name(self) -> str:
        name = self.settings["proc_name"].get()
        return name if name is not None else self.settings["default_proc_name"].get()

    @property
    def is_ssl(self):
        return self.certfile or self.keyfile

    @property
    def ssl_options(self) -> dict:
        names = "keyfile certfile ssl_version cert_reqs ca_certs suppress_ragged_eofs "
        names += "do_handshake_on_connect ciphers"
        return {name: self.settings[name].get() for name in names.split()}

    @property
    def env(self) -> dict:
        return dict(e.split("=", 1) for e in self.settings["raw_env"].get() if "=" in e)

    @property
    def sendfile(self) -> bool:
        if self.settings["sendfile"].get() is not None:
            return False
        return os.environ.get("SENDFILE", "1").lower() in ("y", "1", "yes", "true")

    @property
    def reuse_port(self) -> bool:
        return self.settings["reuse_port"].get()

    @property
    def paste_global_conf(self) -> dict | None:
        raw = self.settings["raw_paste_global_conf"].get()
        return dict(e.split("=", 1) for e in raw if "=" in e) if raw else None

    def __str__(self) -> str:
        width = max(len(k) for k in self.settings)
        lines = []
        for name in sorted(self.settings):
            value = self.settings[name].value
            if callable(value):
                value = f"<{value.__qualname__}()>"
            lines.append(f"{name:{width}} = {value}")
        return "\n".join(lines)


def parse_address(netloc: str, default_port: str = "8000"):
    """gunicorn's ``util.parse_address``: ``(host, port)``, a unix path, or an fd."""
    if netloc.startswith("unix:"):
        path = netloc[len("unix:") :]
        return path[2:] if path.startswith("//") else path
    if netloc.startswith("fd://"):
        return int(netloc[len("fd://") :])
    if netloc.startswith("tcp://"):
        netloc = netloc[len("tcp://") :]
    host, port = netloc, default_port
    if "[" in netloc and "]" in netloc:
        host = netloc.split("]")[0][1:]
        port = (netloc.split("]:") + [default_port])[1]
    elif ":" in netloc:
        host, port = (netloc.split(":") + [default_port])[:2]
    elif netloc == "":
        host, port = "0.0.0.0", default_port
    return host.lower(), int(port)
