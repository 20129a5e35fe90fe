"""A small Pyramid application, loaded by PasteDeploy from ``production.ini``.

``main`` is the PasteDeploy app factory (``use = call:pyramid_app:main``). Its views:

- ``GET /``: a plain-text greeting;
- ``GET /json``: a JSON document (Pyramid's ``json`` renderer), echoing ``?name=``;
- ``POST /echo``: the request body, content type and length back as JSON;
- ``GET /config``: the ini's app settings and the PasteDeploy ``global_config``;
- ``GET /log?message=M``: logs ``M`` at INFO on the ``pyramid_app`` logger, which the ini's
  logging sections route to stderr with a format of their own.
"""

import hashlib
import logging

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.view import view_config

log = logging.getLogger(__name__)

# The global_config keys /config reports: PasteDeploy's own and the ones the tests pass.
GLOBAL_KEYS = ("__file__", "here", "deploy_tag")


@view_config(route_name="home", request_method="GET")
def home(request):
    return Response("pyramid says hello\n", content_type="text/plain")


@view_config(route_name="json", renderer="json", request_method="GET")
def json_view(request):
    return {
        "framework": "pyramid",
        "name": request.params.get("name", "world"),
        "numbers": [1, 2, 3],
        "app_name": request.registry.settings.get("app_name"),
    }


@view_config(route_name="echo", renderer="json", request_method="POST")
def echo(request):
    body = request.body
    is_form = request.content_type == "application/x-www-form-urlencoded"
    return {
        "content_type": request.content_type,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "text": body.decode("utf-8", "replace") if len(body) <= 4096 else None,
        "form": dict(request.POST) if is_form else None,
    }


@view_config(route_name="config", renderer="json", request_method="GET")
def config_view(request):
    settings = request.registry.settings
    return {
        "app_name": settings.get("app_name"),
        "greeting": settings.get("greeting"),
        "ini_dir": settings.get("ini_dir"),
        "global_config": settings["ferricorn_test.global_config"],
    }


@view_config(route_name="log", request_method="GET")
def log_view(request):
    log.info("pyramid_app view says %s", request.params.get("message", ""))
    return Response("logged\n", content_type="text/plain")


def main(global_config, **settings):
    """The PasteDeploy app factory: ``global_config`` from the ini and ``--paste-global``."""
    settings["ferricorn_test.global_config"] = {key: global_config.get(key) for key in GLOBAL_KEYS}
    with Configurator(settings=settings) as config:
        config.add_route("home", "/")
        config.add_route("json", "/json")
        config.add_route("echo", "/echo")
        config.add_route("config", "/config")
        config.add_route("log", "/log")
        config.scan(__name__)
        return config.make_wsgi_app()
