"""A gunicorn config file whose hooks record what they see of ``server``, ``worker`` and
``req``, one JSON line per call into ``$HOOK_RECORD``; the same file runs on ferricorn and
on gunicorn in tests/test_hook_objects.py.

Each hook touches the attributes its argument has in gunicorn (``server.address``,
``server.LISTENERS``, ``worker.nr``, ``req.peer_addr``...), and the worker ids follow
authentik's hooks: a set kept on ``server`` from ``on_starting`` on, an id put on
``worker`` in ``pre_fork`` and read back in ``post_fork`` and ``child_exit``.
"""

import json
import os

workers = 2


def _record(hook, **fields):
    if "worker" in fields:
        fields["worker_id"] = getattr(fields.pop("worker_object"), "_worker_id", None)
    line = json.dumps({"hook": hook, "process": os.getpid(), **fields}, default=repr)
    with open(os.environ["HOOK_RECORD"], "a") as out:
        out.write(line + "\n")


def _safe(builder, obj):
    """What ``builder`` reads of ``obj``, or the error it met: one missing attribute must
    not hide the rest of the record."""
    try:
        return builder(obj)
    except Exception as exc:  # noqa: BLE001 - recorded for the test to show
        return {"error": repr(exc)}


def _kinds(obj, names):
    return {name: type(getattr(obj, name)).__name__ for name in names}


def _cfg(cfg):
    return {
        "types": {name: type(getattr(cfg, name)).__name__ for name in cfg.settings},
        "values": {
            name: getattr(cfg, name)
            for name in (
                "workers bind worker_class_str threads timeout graceful_timeout keepalive "
                "max_requests backlog proc_name loglevel preload_app daemon pidfile umask "
                "raw_env env uid gid reload errorlog accesslog worker_connections "
                "limit_request_line limit_request_fields limit_request_field_size "
                "secure_scheme_headers forwarded_allow_ips max_requests_jitter tmp_upload_dir "
                "proxy_protocol proxy_allow_ips"
            ).split()
        },
        "setting": cfg.settings["workers"].value,
        "address": cfg.address,
    }


def _server(server):
    return {
        "pid": server.pid,
        "address": server.address,
        "listeners": [str(lnr) for lnr in server.LISTENERS],
        "listener_names": [lnr.getsockname() for lnr in server.LISTENERS],
        "listener_fds": [lnr.fileno() >= 0 for lnr in server.LISTENERS],
        "proc_name": server.proc_name,
        "num_workers": server.num_workers,
        "workers": sorted(server.WORKERS),
        "worker_ages": sorted(w.age for w in server.WORKERS.values()),
        "cfg": _cfg(server.cfg),
        "timeout": server.timeout,
        "log": callable(server.log.info),
        "kinds": _kinds(server, ["pid", "address", "LISTENERS", "WORKERS", "num_workers"]),
    }


def _worker(worker):
    wsgi = getattr(worker, "wsgi", None)
    return {
        "pid": worker.pid,
        "ppid": worker.ppid,
        "age": worker.age,
        "nr": worker.nr,
        "alive": worker.alive,
        "booted": worker.booted,
        "timeout": worker.timeout,
        "sockets": [str(s) for s in worker.sockets],
        "wsgi": callable(wsgi),
        "app_wsgi": callable(worker.app.wsgi),
        "cfg_workers": worker.cfg.workers,
        "log": callable(worker.log.info),
        "kinds": _kinds(worker, ["pid", "ppid", "age", "nr", "alive", "sockets"]),
    }


def _request(req):
    return {
        "method": req.method,
        "uri": req.uri,
        "path": req.path,
        "query": req.query,
        "fragment": req.fragment,
        "version": req.version,
        "scheme": req.scheme,
        "headers": [(name, value) for name, value in req.headers if name in ("HOST", "X-HOOK")],
        "remote_addr": req.remote_addr,
        "peer_addr": req.peer_addr,
        "body": callable(req.body.read),
        "kinds": _kinds(req, ["remote_addr", "peer_addr", "headers", "version"]),
    }


# authentik's worker ids: reuse the ids of workers that exited.
def _next_worker_id(server):
    if server._worker_id_overload:
        return server._worker_id_overload.pop()
    in_use = {w._worker_id for w in dict(server.WORKERS).values() if w.alive}
    free = server._worker_id_current - in_use
    return min(free)


def on_starting(server):
    server._worker_id_overload = set()
    _record("on_starting", server=_safe(_server, server))


def nworkers_changed(server, new_value, old_value):
    server._worker_id_current = set(range(1, new_value + 1))
    _record("nworkers_changed", new=new_value, old=old_value, has_cfg=hasattr(server, "cfg"))


def when_ready(server):
    _record("when_ready", server=_safe(_server, server))


def on_reload(server):
    server._worker_id_overload = set(range(1, server.cfg.workers + 1))
    _record("on_reload", server=_safe(_server, server))


def pre_fork(server, worker):
    worker._worker_id = _safe(_next_worker_id, server)
    _record(
        "pre_fork",
        server=_safe(_server, server),
        worker=_safe(_worker, worker),
        worker_object=worker,
    )


def post_fork(server, worker):
    _record(
        "post_fork",
        server=_safe(_server, server),
        worker=_safe(_worker, worker),
        worker_object=worker,
        getpid=os.getpid(),
    )


def post_worker_init(worker):
    _record("post_worker_init", worker=_safe(_worker, worker), worker_object=worker)


def pre_request(worker, req):
    _record(
        "pre_request", worker=_safe(_worker, worker), worker_object=worker, req=_safe(_request, req)
    )


def post_request(worker, req, environ, resp):
    _record(
        "post_request",
        worker=_safe(_worker, worker),
        worker_object=worker,
        req=_safe(_request, req),
        environ=environ["PATH_INFO"],
        status=resp.status,
        status_code=resp.status_code,
        sent=resp.sent,
    )


def child_exit(server, worker):
    _safe(lambda s: s._worker_id_overload.add(worker._worker_id), server)
    _record(
        "child_exit",
        server=_safe(_server, server),
        worker=_safe(_worker, worker),
        worker_object=worker,
    )


def worker_exit(server, worker):
    _record(
        "worker_exit",
        server=_safe(_server, server),
        worker=_safe(_worker, worker),
        worker_object=worker,
    )


def on_exit(server):
    _record("on_exit", server=_safe(_server, server))


def worker_int(worker):
    _record("worker_int", worker=_safe(_worker, worker), worker_object=worker)
