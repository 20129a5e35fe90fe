"""Replays gunicorn's request-parser corpus (tests/corpus/) against ferricorn over sockets.

Every case is sent three ways (whole, one byte at a time, random splits from an RNG seeded
with the case name) to ``apps.echo:app``, which answers with JSON of what it received.

- valid case, default cfg: a 2xx whose echo matches the case's first request (the sync
  worker answers one request per connection, then closes);
- invalid case, default cfg: a 4xx, or a close without any response; never a 2xx;
- a case whose cfg names only settings ferricorn has (the request limits) runs on a server
  started with those flags; any other cfg names a setting not built yet: skipped, counted
  and listed in the summary at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections import Counter
from urllib.parse import unquote_to_bytes

import pytest
from conftest import SUMMARY_PROVIDERS, TESTS_DIR, exchange, running

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
}


def _runnable(case) -> bool:
    return all(key in CFG_FLAGS for key in case["cfg"])


def _split(kind):
    run = sorted(name for name, case in CORPUS[kind].items() if _runnable(case))
    skip = sorted(name for name, case in CORPUS[kind].items() if not _runnable(case))
    return run, skip


VALID, VALID_SKIPPED = _split("valid")
INVALID, INVALID_SKIPPED = _split("invalid")
SKIPPED = [("valid", n) for n in VALID_SKIPPED] + [("invalid", n) for n in INVALID_SKIPPED]

# (kind, name) -> {mode: passed}; filled as the tests run, read by the summary.
RESULTS: dict[tuple[str, str], dict[str, bool]] = {}


@pytest.fixture(scope="module")
def servers():
    """The echo server for a case's cfg: one per distinct cfg, started on first use."""
    with contextlib.ExitStack() as stack:
        started = {}

        def for_cfg(cfg: dict):
            key = json.dumps(cfg, sort_keys=True)
            if key not in started:
                flags = [x for k, v in sorted(cfg.items()) for x in (CFG_FLAGS[k], str(v))]
                started[key] = stack.enter_context(running("apps.echo:app", *flags, workers=2))
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


def completed(case) -> tuple[bytes, str]:
    """The bytes to send for a valid case, and the body the app must see.

    gunicorn's parser tests read whatever body bytes a file holds, and one case (099: a
    form upload) declares more Content-Length than it carries. Over a socket that request
    would never end, so the missing bytes are added as padding and expected in the body.
    """
    raw = bytes.fromhex(case["raw_hex"])
    want = case["requests"][0]
    body = bytes.fromhex(want["body_hex"])
    declared = [int(v) for k, v in want["headers"] if k == "CONTENT-LENGTH"]
    if len(case["requests"]) == 1 and declared and declared[0] > len(body):
        padding = b"=" * (declared[0] - len(body))
        return raw + padding, (body + padding).hex()
    return raw, want["body_hex"]


def recorded(kind, name, mode, check):
    outcome = RESULTS.setdefault((kind, name), {})
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


def check_valid(servers, name, mode):
    case = CORPUS["valid"][name]
    server = servers(case["cfg"])
    raw, body_hex = completed(case)
    result = send(server, name, raw, mode, half_close=False)
    response = result.response
    if name in DECIDED_400:
        assert response is not None and response.status == 400, (DECIDED_400[name], result.raw)
        return
    assert response is not None, f"closed without a response ({result.closed})"
    assert 200 <= response.status < 300, result.raw[:500]
    echo = json.loads(response.body)
    want = case["requests"][0]
    assert echo["method"] == want["method"]
    assert echo["raw_uri"] == want["uri"]
    path = expected_path(want)
    if path is not None:
        assert echo["path"] == path
    assert echo["query"] == want["query"]
    assert echo["protocol"] == "HTTP/{}.{}".format(*want["version"])
    assert echoed_headers(echo) == expected_headers(want["headers"])
    assert echo["body_hex"] == body_hex


def check_invalid(servers, name, mode):
    case = CORPUS["invalid"][name]
    server = servers(case["cfg"])
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
def test_valid(servers, name, mode):
    recorded("valid", name, mode, lambda: check_valid(servers, name, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", INVALID)
def test_invalid(servers, name, mode):
    recorded("invalid", name, mode, lambda: check_invalid(servers, name, mode))


@pytest.mark.parametrize("kind, name", SKIPPED, ids=[f"{k}/{n}" for k, n in SKIPPED])
def test_cfg_case_skipped(kind, name):
    pytest.skip(f"needs gunicorn setting(s) {CORPUS[kind][name]['cfg']}")


# --- summary ----------------------------------------------------------------------------------


def _tally(kind, names):
    passed = failed = not_run = 0
    failures = []
    for name in names:
        outcome = RESULTS.get((kind, name), {})
        if len(outcome) < len(MODES):
            not_run += 1
        elif all(outcome.values()):
            passed += 1
        else:
            failed += 1
            failures.append(f"{name}({','.join(m for m, ok in outcome.items() if not ok)})")
    text = f"{kind} {passed}/{len(names)} pass"
    if not_run:
        text += f" ({not_run} not run)"
    return text, failures


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    valid, valid_failures = _tally("valid", VALID)
    invalid, invalid_failures = _tally("invalid", INVALID)
    keys = Counter(key for kind, name in SKIPPED for key in CORPUS[kind][name]["cfg"])
    cfg = ", ".join(f"{key} x{count}" for key, count in sorted(keys.items()))
    lines = [f"corpus: {valid}, {invalid}, skipped {len(SKIPPED)} (cfg: {cfg})"]
    lines.append("corpus skipped: " + " ".join(f"{k}/{n}" for k, n in SKIPPED))
    lines.append("corpus decided as 400 on the RFC: " + ", ".join(DECIDED_400))
    if valid_failures or invalid_failures:
        lines.append("corpus failures: " + " ".join(valid_failures + invalid_failures))
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
        f"{kind}/{name}" for (kind, name), outcome in RESULTS.items() if not all(outcome.values())
    ]
    assert failing == [], "\n".join(summary_lines())
