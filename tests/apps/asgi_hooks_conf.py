"""A config file whose ``pre_request`` and ``post_request`` record, one JSON line per call
into ``$HOOK_RECORD``, what gunicorn 27's ASGI worker hands them; tests/test_asgi_hooks.py
runs it on ferricorn and on gunicorn ``-k asgi`` and compares. A request with
``X-Fail: pre`` (or ``post``) makes that hook raise."""

import json
import os


def _record(hook, **fields):
    line = json.dumps({"hook": hook, "pid": os.getpid(), **fields}, default=repr)
    with open(os.environ["HOOK_RECORD"], "a") as out:
        out.write(line + "\n")


def _req(req):
    return {
        "method": req.method,
        "uri": req.uri,
        "path": req.path,
        "query": req.query,
        "fragment": req.fragment,
        "version": list(req.version),
        "scheme": req.scheme,
        "headers": [[n, v] for n, v in req.headers if n in ("HOST", "X-HOOK", "X-FAIL")],
        "headers_bytes": [
            [n.decode(), v.decode()] for n, v in req.headers_bytes if n in (b"host", b"x-hook")
        ],
        "raw_path": req.raw_path.decode(),
        "content_length": req.content_length,
        "chunked": req.chunked,
        "should_close": req.should_close(),
        "get_header": req.get_header("x-hook"),
        "has": {a: hasattr(req, a) for a in ("body", "remote_addr", "peer_addr", "trailers")},
    }


def pre_request(worker, req):
    _record("pre_request", nr=worker.nr, req=_req(req))
    if req.get_header("X-FAIL") == "pre":
        raise RuntimeError("pre_request says no")


def post_request(worker, req, environ, resp):
    seen = None
    if resp is not None:
        seen = {
            "status": resp.status,
            "status_type": type(resp.status).__name__,
            "sent": resp.sent,
            "header_names": sorted(n.lower() for n, _ in resp.headers if n.lower() != "date"),
            "has_status_code": hasattr(resp, "status_code"),
        }
    env = None
    if environ is not None:
        env = {k: v for k, v in environ.items() if not k.startswith("HTTP_") or k == "HTTP_X_HOOK"}
    _record("post_request", nr=worker.nr, req=_req(req), environ=env, resp=seen)
    if req.get_header("X-FAIL") == "post":
        raise RuntimeError("post_request says no")
