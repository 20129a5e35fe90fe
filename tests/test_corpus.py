"""Replays gunicorn's request-parser corpus (tests/corpus/) against ferricorn over sockets.

Every case is sent three ways (whole, one byte at a time, random splits from an RNG seeded
with the case name) to ``apps.echo:app``, which answers with JSON of what it received, on
each worker class.

- valid case, default cfg, sync worker: a 2xx whose echo matches the case's first request
  (the sync worker answers one request per connection, then closes);
- valid case, async worker: one 2xx per request, every request of a pipelined case answered
  on the same connection, each echo matching its request, in order;
- invalid case, default cfg: a 4xx, or a close without any response; never a 2xx;
- a case whose cfg names only settings ferricorn has (the request limits) runs on a server
  started with those flags; any other cfg names a setting not built yet: skipped, counted
  and listed in the summary at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from functools import partial
from urllib.parse import unquote_to_bytes

import pytest
from conftest import SUMMARY_PROVIDERS, TESTS_DIR, WORKER_CLASSES, Client, exchange, running

CORPUS = json.loads((TESTS_DIR / "corpus" / "gunicorn-requests.json").read_text())
MODES = ["whole", "bytewise", "random"]

# Two valid cases are decided on the RFC as 400 (a live gunicorn answers 400 to both too):
DECIDED_400 = {
    # Transfer-Encoding together with Content-Length: RFC 9112 §6.3 (item 3) says such a
    # message "ought to be handled as an error"; it is the classic smuggling vector.
    "009.http": "Transfer-Encoding with Content-Length (RFC 9112 section 6.3)",
    # Raw UTF-8 bytes in the request-target are not a valid URI (RFC 9112 §3.2 refers to
    # RFC 3986, which allows only ASCII; other octets must be percent-encoded).
    "027.http": "raw non-ASCII bytes in the request-target (RFC 9112 section 3.2, RFC 3986)",
}


# The gunicorn settings ferricorn has, as its command-line flags.
CFG_FLAGS = {
    "limit_request_line": "--limit-request-line",
    "limit_request_fields": "--limit-request-fields",
    "limit_request_field_size": "--limit-request-field_size",
    "forwarded_allow_ips": "--forwarded-allow-ips",
    "header_map": "--header-map",
}


def _flag_value(value) -> str:
    """A cfg value as its flag takes it: lists comma-separated, as gunicorn's CLI does."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _runnable(case) -> bool:
    return all(key in CFG_FLAGS for key in case["cfg"])


def _split(kind):
    run = sorted(name for name, case in CORPUS[kind].items() if _runnable(case))
    skip = sorted(name for name, case in CORPUS[kind].items() if not _runnable(case))
    return run, skip


VALID, VALID_SKIPPED = _split("valid")
INVALID, INVALID_SKIPPED = _split("invalid")
SKIPPED = [("valid", n) for n in VALID_SKIPPED] + [("invalid", n) for n in INVALID_SKIPPED]

# (worker class, kind, name) -> {mode: passed}; filled as the tests run, read by the summary.
RESULTS: dict[tuple[str, str, str], dict[str, bool]] = {}


@pytest.fixture(scope="module")
def servers():
    """The echo server for a worker class and a case's cfg: one per distinct pair, started on
    first use."""
    with contextlib.ExitStack() as stack:
        started = {}

        def for_cfg(worker_class: str, cfg: dict):
            key = (worker_class, json.dumps(cfg, sort_keys=True))
            if key not in started:
                flags = [x for k, v in sorted(cfg.items()) for x in (CFG_FLAGS[k], _flag_value(v))]
                server = running("apps.echo:app", *flags, workers=2, worker_class=worker_class)
                started[key] = stack.enter_context(server)
            return started[key]

        yield for_cfg


def pieces(raw: bytes, mode: str, name: str) -> tuple[list[bytes], float]:
    """The request cut for ``mode``, and the pause between pieces."""
    if mode == "whole":
        return [raw], 0.0
    if mode == "bytewise":
        return [raw[i : i + 1] for i in range(len(raw))], 0.0
    rng = random.Random(name)
    count = min(len(raw) - 1, rng.randint(2, 12))
    cuts = sorted(rng.sample(range(1, len(raw)), count))
    bounds = [0, *cuts, len(raw)]
    # A short pause lets each piece reach the server on its own read.
    return [raw[a:b] for a, b in zip(bounds, bounds[1:])], 0.002


def send(server, name, raw, mode, half_close):
    parts, pace = pieces(raw, mode, name)
    return exchange(server.address(), parts, half_close=half_close, pace=pace)


def send_all_then_read(server, name, raw, mode, count):
    """Sends every piece (not stopping at the first answer, as ``exchange`` does) and reads
    ``count`` responses off the one connection; a response is None once the server closed."""
    parts, pace = pieces(raw, mode, name)
    with Client(server.address()) as client:
        for part in parts:
            if not client.send(part):
                break
            if pace:
                time.sleep(pace)  # pacing, so each piece reaches the server on its own
        return [client.read_response() for _ in range(count)]


def completed(case) -> tuple[bytes, list[str]]:
    """The bytes to send for a valid case, and the body each of its requests must see.

    gunicorn's parser tests read whatever body bytes a file holds, and one case (099: a
    form upload) declares more Content-Length than it carries. Over a socket that request
    would never end, so the missing bytes are added as padding and expected in the body.
    """
    raw = bytes.fromhex(case["raw_hex"])
    bodies = [want["body_hex"] for want in case["requests"]]
    want = case["requests"][0]
    body = bytes.fromhex(want["body_hex"])
    declared = [int(v) for k, v in want["headers"] if k == "CONTENT-LENGTH"]
    if len(case["requests"]) == 1 and declared and declared[0] > len(body):
        padding = b"=" * (declared[0] - len(body))
        return raw + padding, [(body + padding).hex()]
    return raw, bodies


def recorded(worker_class, kind, name, mode, check):
    outcome = RESULTS.setdefault((worker_class, kind, name), {})
    outcome[mode] = False
    check()
    outcome[mode] = True


# --- expectations -----------------------------------------------------------------------------


def expected_path(request: dict) -> str | None:
    """PATH_INFO for the corpus ``path``: percent-decoded, bytes taken as latin-1.

    For authority-form targets (CONNECT host:port) there is no path at all; gunicorn's label
    is a urlsplit artifact ("443" for one case, "[::1]:443" for the other), so it is not
    compared.
    """
    if request["method"] == "CONNECT":
        return None
    return unquote_to_bytes(request["path"].encode("latin-1")).decode("latin-1")


def expected_headers(pairs: list) -> dict[str, str]:
    """The environ keys a request's headers become, repeated names joined with ","."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def echoed_headers(echo: dict) -> dict[str, str]:
    # PEP 3333: CONTENT_TYPE and CONTENT_LENGTH "may be empty or absent".
    return {
        key: value
        for key, value in echo["headers"].items()
        if value != "" or key not in ("CONTENT_TYPE", "CONTENT_LENGTH")
    }


def check_valid(servers, worker_class, name, mode):
    case = CORPUS["valid"][name]
    server = servers(worker_class, case["cfg"])
    raw, bodies = completed(case)
    if worker_class == "sync":  # one answer, then the close
        result = send(server, name, raw, mode, half_close=False)
        responses = [result.response]
    else:
        count = 1 if name in DECIDED_400 else len(case["requests"])
        responses = send_all_then_read(server, name, raw, mode, count)
    if name in DECIDED_400:
        response = responses[0]
        assert response is not None and response.status == 400, (DECIDED_400[name], response)
        return
    for index, response in enumerate(responses):
        assert response is not None, f"closed without a response to request {index + 1}"
        assert 200 <= response.status < 300, (index + 1, response)
        check_echo(json.loads(response.body), case["requests"][index], bodies[index])


def check_echo(echo, want, body_hex):
    assert echo["method"] == want["method"]
    assert echo["raw_uri"] == want["uri"]
    path = expected_path(want)
    if path is not None:
        assert echo["path"] == path
    assert echo["query"] == want["query"]
    assert echo["protocol"] == "HTTP/{}.{}".format(*want["version"])
    assert echoed_headers(echo) == expected_headers(want["headers"])
    assert echo["body_hex"] == body_hex


def check_invalid(servers, worker_class, name, mode):
    case = CORPUS["invalid"][name]
    server = servers(worker_class, case["cfg"])
    result = send(server, name, bytes.fromhex(case["raw_hex"]), mode, half_close=True)
    if result.raw == b"":
        return  # closed without any response: allowed
    assert result.raw.startswith(b"HTTP/1."), result.raw[:300]
    status = int(result.raw.split(b" ", 2)[1])
    assert 400 <= status < 500, (
        f"expected a 4xx (gunicorn: {case['error']}, {case['wsgi_status']}), got {status}",
        result.raw[:300],
    )


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", VALID)
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_valid(servers, worker_class, name, mode):
    check = partial(check_valid, servers, worker_class, name, mode)
    recorded(worker_class, "valid", name, mode, check)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", INVALID)
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_invalid(servers, worker_class, name, mode):
    check = partial(check_invalid, servers, worker_class, name, mode)
    recorded(worker_class, "invalid", name, mode, check)


@pytest.mark.parametrize("kind, name", SKIPPED, ids=[f"{k}/{n}" for k, n in SKIPPED])
def test_cfg_case_skipped(kind, name):
    pytest.skip(f"needs gunicorn setting(s) {CORPUS[kind][name]['cfg']}")


# --- summary ----------------------------------------------------------------------------------


def _tally(worker_class, kind, names):
    passed = failed = not_run = 0
    failures = []
    for name in names:
        outcome = RESULTS.get((worker_class, kind, name), {})
        if len(outcome) < len(MODES):
            not_run += 1
        elif all(outcome.values()):
            passed += 1
        else:
            failed += 1
            modes = ",".join(m for m, ok in outcome.items() if not ok)
            failures.append(f"{worker_class}:{kind}/{name}({modes})")
    text = f"{kind} {passed}/{len(names)} pass"
    if not_run:
        text += f" ({not_run} not run)"
    return text, failures


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = []
    failures = []
    for worker_class in WORKER_CLASSES:
        if not any(key[0] == worker_class for key in RESULTS):
            continue
        valid, valid_failures = _tally(worker_class, "valid", VALID)
        invalid, invalid_failures = _tally(worker_class, "invalid", INVALID)
        lines.append(f"corpus ({worker_class}): {valid}, {invalid}")
        failures += valid_failures + invalid_failures
    keys = Counter(key for kind, name in SKIPPED for key in CORPUS[kind][name]["cfg"])
    cfg = ", ".join(f"{key} x{count}" for key, count in sorted(keys.items()))
    lines.append(f"corpus skipped {len(SKIPPED)} cases per worker class (cfg: {cfg})")
    lines.append("corpus skipped: " + " ".join(f"{k}/{n}" for k, n in SKIPPED))
    lines.append("corpus decided as 400 on the RFC: " + ", ".join(DECIDED_400))
    if failures:
        lines.append("corpus failures: " + " ".join(failures))
    return lines


SUMMARY_PROVIDERS.append(summary_lines)


def test_corpus_counts():
    """Runs last in this file: the numbers and the skip list, checked and shown."""
    assert len(VALID) + len(VALID_SKIPPED) == len(CORPUS["valid"])
    assert len(INVALID) + len(INVALID_SKIPPED) == len(CORPUS["invalid"])
    skipped = sorted(f"{k}/{n} {CORPUS[k][n]['cfg']}" for k, n in SKIPPED)
    assert all(CORPUS[k][n]["cfg"] for k, n in SKIPPED), skipped
    assert set(DECIDED_400) <= set(VALID)
    failing = [
        f"{worker_class}:{kind}/{name}"
        for (worker_class, kind, name), outcome in RESULTS.items()
        if not all(outcome.values())
    ]
    assert failing == [], "\n".join(summary_lines())
