"""An app that sends one response header whose value holds the byte ``?byte=NN`` (decimal),
so that what the server does with each byte in a value can be compared with gunicorn."""

from urllib.parse import parse_qs


def app(environ, start_response):
    byte = int(parse_qs(environ["QUERY_STRING"])["byte"][0])
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Value", f"a{chr(byte)}b")])
    return [b"sent"]
