"""ferricorn: a preforking WSGI HTTP server written in Rust, with gunicorn's command line."""

from ferricorn._ferricorn import ClientDisconnected, FileWrapper, __version__
from ferricorn._worker import RequestTimeout

__all__ = ["ClientDisconnected", "FileWrapper", "RequestTimeout", "__version__", "main"]


def main() -> None:
    """Entry point of the ``ferricorn`` console script and of ``python -m ferricorn``."""
    from ferricorn.__main__ import main as _main

    _main()
