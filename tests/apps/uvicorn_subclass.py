"""A project's own uvicorn worker, as people write them for gunicorn: ``-k
apps.uvicorn_subclass.Worker``. ferricorn runs its asgi worker for it (tests/test_asgi.py)."""

from uvicorn.workers import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": "h11", "lifespan": "off"}
