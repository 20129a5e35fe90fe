#!/usr/bin/env bash
# Autobahn's fuzzingclient (cases 1-10; 12 and 13 are permessage-deflate, which no
# server here negotiates) against examples/ws_echo.rs, ferricorn `-k asgi` (.venv's build:
# `make build` first) and gunicorn 27 `-k asgi`, the last two running asgi_echo.py, in one
# run. Prints each server's counts of OK, NON-STRICT, FAILED,
# INFORMATIONAL and UNIMPLEMENTED, and writes the HTML report to $OUT.
#
#   WSTEST=/path/to/wstest PYTHON=.venv/bin/python crates/ferricorn-http/autobahn/run.sh
#
# wstest is the `autobahntestsuite` package (PyPI), which needs Python 2.7
# (docs/websocket-protocol.md says how it was installed). CASES narrows the run, e.g.
# CASES='["1.*","6.4.*"]'.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WSTEST=${WSTEST:-wstest}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${OUT:-$(mktemp -d /tmp/autobahn.XXXXXX)}
CASES=${CASES:-'["*"]'}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Polls until something accepts on 127.0.0.1:$1, for 60 s at most.
wait_port() {
    for _ in $(seq 600); do
        "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.1)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2; return 1
}

cargo build --quiet --release -p ferricorn-http --example ws_echo --manifest-path "$ROOT/Cargo.toml"
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
    | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ECHO_PORT=$(free_port)
"$TARGET/release/examples/ws_echo" "127.0.0.1:$ECHO_PORT" > "$OUT/ws_echo.log" 2>&1 &
pids+=($!)
GUNICORN_PORT=$(free_port)
"$PYTHON" -m gunicorn -k asgi -w 1 -b "127.0.0.1:$GUNICORN_PORT" --chdir "$HERE" \
    asgi_echo:app > "$OUT/gunicorn.log" 2>&1 &
pids+=($!)
FERRICORN_PORT=$(free_port)
"$ROOT/.venv/bin/ferricorn" -k asgi -w 1 -b "127.0.0.1:$FERRICORN_PORT" --chdir "$HERE" \
    asgi_echo:app > "$OUT/ferricorn.log" 2>&1 &
pids+=($!)
wait_port "$ECHO_PORT"
wait_port "$GUNICORN_PORT"
wait_port "$FERRICORN_PORT"

cat > "$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/reports",
  "servers": [
    {"agent": "ferricorn-http ws_echo", "url": "ws://127.0.0.1:$ECHO_PORT"},
    {"agent": "ferricorn -k asgi", "url": "ws://127.0.0.1:$FERRICORN_PORT"},
    {"agent": "gunicorn 27 -k asgi", "url": "ws://127.0.0.1:$GUNICORN_PORT"}
  ],
  "cases": $CASES,
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
(cd "$OUT" && "$WSTEST" -m fuzzingclient -s fuzzingclient.json > wstest.log 2>&1)
"$PYTHON" - "$OUT/reports/index.json" <<'PY'
import collections, json, sys
index = json.load(open(sys.argv[1]))
for agent, cases in index.items():
    counts = collections.Counter(r["behavior"] for r in cases.values())
    closes = collections.Counter(r["behaviorClose"] for r in cases.values())
    print(f"{agent}: {len(cases)} cases:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
          "| close:", ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))
    for case, r in sorted(cases.items(), key=lambda c: [int(x) for x in c[0].split(".")]):
        if r["behavior"] not in ("OK", "INFORMATIONAL") or r["behaviorClose"] not in ("OK", "INFORMATIONAL"):
            print(f"  {case}: {r['behavior']} (close {r['behaviorClose']})")
PY
echo "report: $OUT/reports/index.html"
