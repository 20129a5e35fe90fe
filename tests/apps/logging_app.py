"""For test_logging: writes to stdout, stderr and Python logging, as apps do."""

import logging
import sys

log = logging.getLogger("app.views")


def app(environ, start_response):
    tag = environ.get("QUERY_STRING", "")
    print(f"print says {tag}", flush=True)
    sys.stderr.write(f"stderr says {tag}\n")
    sys.stderr.flush()
    log.warning("logger says %s", tag)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged\n"]
