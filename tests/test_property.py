"""Property: a pipelined stream cut anywhere gets the same responses as the stream whole.

Hypothesis draws a stream of GET, POST with Content-Length and chunked POST requests (random
targets, extra fields and bodies) and a set of cut points; the stream goes to the echo app
once whole and once in pieces, each on its own connection, and the responses must match,
and match what was sent. The async worker answers every pipelined request; the sync worker
answers one request per connection, so there the first response is compared.

The examples are derandomized (the same ones every run) and bounded, so the test takes a
few seconds per worker class. The client never half-closes: it reads the responses it
expects by their framing, then closes.
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass

import pytest
from conftest import Client, chunked, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

APP = "apps.echo:app"
EXAMPLES = 200
# Between pieces, so each one reaches the server in its own read (not "waiting for" anything).
PACE = 0.002

SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Request:
    raw: bytes
    method: str
    target: str
    body: bytes


URL_CHARS = string.ascii_letters + string.digits + "-._~"
words = st.text(alphabet=URL_CHARS, min_size=1, max_size=10)
field_values = st.text(alphabet=string.ascii_letters + string.digits + " ,;=/", max_size=20).map(
    str.strip
)
bodies = st.binary(max_size=200)


@st.composite
def requests(draw) -> Request:
    kind = draw(st.sampled_from(["GET", "POST", "CHUNKED"]))
    target = "/" + "/".join(draw(st.lists(words, min_size=1, max_size=3)))
    if draw(st.booleans()):
        target += "?" + draw(words) + "=" + draw(words)
    fields = draw(st.lists(st.tuples(words, field_values), max_size=3))
    lines = [f"{'GET' if kind == 'GET' else 'POST'} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"X-{name}: {value}" for name, value in fields]
    # Now and then a head of several KB, past the bound an incomplete head once had (bug 7).
    pads = draw(st.sampled_from([0, 0, 0, 0, 0, 7]))
    lines += [f"X-Pad-{i}: {'p' * 1000}" for i in range(pads)]
    body = b""
    framed = b""
    if kind == "POST":
        body = draw(bodies)
        lines.append(f"Content-Length: {len(body)}")
        framed = body
    elif kind == "CHUNKED":
        parts = draw(st.lists(st.binary(min_size=1, max_size=80), max_size=4))
        body = b"".join(parts)
        lines.append("Transfer-Encoding: chunked")
        framed = chunked(*parts)
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + framed
    return Request(raw, lines[0].split(" ", 1)[0], target, body)


@st.composite
def cut_streams(draw) -> tuple[list[Request], list[int]]:
    reqs = draw(st.lists(requests(), min_size=1, max_size=5))
    length = sum(len(r.raw) for r in reqs)
    cuts = draw(st.lists(st.integers(1, max(1, length - 1)), min_size=1, max_size=8))
    return reqs, sorted(set(cuts))


def pieces(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def responses(server, parts: list[bytes], count: int) -> list[tuple]:
    """Sends ``parts`` on one connection; the first ``count`` responses, without Date."""
    with Client(server.address()) as client:
        for i, part in enumerate(parts):
            if i:
                time.sleep(PACE)  # pacing, so the cut is a cut on the server's side too
            if not client.send(part):
                break  # the sync worker may close once it has answered the first request
        got = []
        for _ in range(count):
            resp = client.read_response()
            assert resp is not None and resp.complete, f"response {len(got)} missing: {resp}"
            headers = [(k, v) for k, v in resp.headers if k.lower() != "date"]
            got.append((resp.status, headers, resp.body))
        return got


def check_echo(response: tuple, request: Request) -> None:
    status, _, body = response
    assert status == 200, response
    doc = json.loads(body)
    assert (doc["method"], doc["raw_uri"], bytes.fromhex(doc["body_hex"])) == (
        request.method,
        request.target,
        request.body,
    )


# Each worker class with gunicorn's default limits, and with `--limit-request-field_size 0`
# (gunicorn's default per line), where a 7 KB head once parsed whole and got 431 in pieces.
SERVERS = [
    ("sync", ()),
    ("async", ()),
    ("sync", ("--limit-request-field_size", "0")),
    ("async", ("--limit-request-field_size", "0")),
]


@pytest.fixture(scope="module", params=SERVERS, ids=lambda p: " ".join([p[0], *p[1]]))
def server(request):
    worker_class, extra = request.param
    with running(APP, *extra, worker_class=worker_class) as srv:
        yield srv


@SETTINGS
@given(case=cut_streams())
def test_pipelined_stream_cut_anywhere_gets_the_same_responses(server, case):
    reqs, cuts = case
    stream = b"".join(r.raw for r in reqs)
    count = len(reqs) if server.worker_class == "async" else 1
    whole = responses(server, [stream], count)
    for response, request in zip(whole, reqs):
        check_echo(response, request)
    split = responses(server, pieces(stream, cuts), count)
    assert split == whole, f"cut at {cuts}"
