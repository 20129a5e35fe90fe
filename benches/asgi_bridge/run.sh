#!/bin/sh
# The ASGI bridge measurement (docs/asgi.md): hello world, wrk keep-alive -c 50, bridge
# (A) `inline` (one thread) and (B) `thread` (the socket thread), alternated round by
# round so both see the same machine. Each run prints requests/s, latency, and the
# workers' CPU time per request (user+system, from /proc: what a request costs when the
# cores are all busy). Run from the repository root after `make build`:
#   benches/asgi_bridge/run.sh [rounds] [seconds] [workers]
set -eu
ROUNDS=${1:-3}
SECONDS_EACH=${2:-10}
WORKERS=${3:-1}
PORT=${PORT:-18790}
BIN=$PWD/.venv/bin/ferricorn
TICKS=$(getconf CLK_TCK)
cd tests

# The CPU ticks of the master's children (the workers).
worker_ticks() {
    total=0
    for child in $(pgrep -P "$1"); do
        ticks=$(awk '{print $14 + $15}' "/proc/$child/stat")
        total=$((total + ticks))
    done
    echo "$total"
}

for round in $(seq "$ROUNDS"); do
    for bridge in inline thread; do
        FERRICORN_ASGI_BRIDGE=$bridge "$BIN" -k asgi -w "$WORKERS" --asgi-lifespan off \
            -b 127.0.0.1:$PORT apps.tiny_asgi:hello >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
            sleep 0.1
        done
        wrk -t 1 -c 50 -d 2s "http://127.0.0.1:$PORT/" >/dev/null
        before=$(worker_ticks "$pid")
        out=$(wrk -t 1 -c 50 -d "${SECONDS_EACH}s" --latency "http://127.0.0.1:$PORT/")
        after=$(worker_ticks "$pid")
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        cpu_us=$(awk -v t=$((after - before)) -v n="$requests" -v hz="$TICKS" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        echo "round $round workers $WORKERS bridge $bridge: $rps req/s, p50 $p50, p99 $p99, $cpu_us us CPU/request"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
