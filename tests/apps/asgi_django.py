"""A Django ASGI app, settings in this module, for tests/test_asgi_apps.py.

Serve ``apps.asgi_django:application``: Django's ASGI handler for HTTP, and a Channels
consumer for WebSockets when ``channels`` is installed (``HAS_CHANNELS``).

- ``GET /async/?name=N``: an async view; says whether it ran on the event loop.
- ``GET /sync/?name=N``: a sync view, which Django runs in a thread (sync_to_async); says
  whether it ran on the loop (it must not).
- ``GET /stream/?go=DIR``: a StreamingHttpResponse over an async generator, ``first``
  then, after ``DIR/last``, ``last``.
- ``WS /ws/`` (Channels): an AsyncWebsocketConsumer echoing text and bytes; the text
  ``close:CODE`` closes with CODE.

Django answers no lifespan scope (neither does Channels' router): the server must carry on
without it, as ``--asgi-lifespan auto`` says.
"""

import asyncio

import django
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from apps.asgi_common import close_code, parts

settings.configure(
    DEBUG=False,
    SECRET_KEY="asgi-tests-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,  # the server's own loggers (uvicorn's) stay on
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)
django.setup()


def on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def async_view(request):
    return JsonResponse({"view": "async", "name": request.GET.get("name"), "on_loop": on_loop()})


def sync_view(request):
    return JsonResponse({"view": "sync", "name": request.GET.get("name"), "on_loop": on_loop()})


async def stream_view(request):
    return StreamingHttpResponse(parts(request.GET["go"]), content_type="text/plain")


urlpatterns = [
    path("async/", async_view),
    path("sync/", sync_view),
    path("stream/", stream_view),
]

from django.core.asgi import get_asgi_application  # noqa: E402 (after settings)

django_app = get_asgi_application()

try:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
except ImportError:  # channels is optional: the HTTP views still run
    HAS_CHANNELS = False
    application = django_app
else:
    HAS_CHANNELS = True

    class EchoConsumer(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            if (code := close_code(text_data)) is not None:
                await self.close(code=code)
            elif text_data is not None:
                await self.send(text_data=text_data)
            else:
                await self.send(bytes_data=bytes_data)

    application = ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": URLRouter([path("ws/", EchoConsumer.as_asgi())]),
        }
    )
