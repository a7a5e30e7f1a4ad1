#!/usr/bin/env bash
# Benchmark of the load generator itself (numbers in loadtest/README.md): how many requests per
# second it can drive from one core, next to wrk on the same core against the same server, so a
# reader knows when a leanstack measurement is limited by the generator rather than the stack.
#
# The server is nginx answering every URL from memory (`return 200`: a 2 KiB page, and a JSON
# list of 100 posts at /api/posts for discovery), pinned to CPU 0; the client is pinned to CPU 1.
#   1. closed loop, 64 connections: wrk on one page, then loadtest's mix (logged-in share 0);
#   2. open loop: loadtest at increasing arrival rates — completed/s, p99 and errors per rate.
# Everything listens on 127.0.0.1 only. Not run by CI.
# Usage: bench/loadtest.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${CONNECTIONS:-64}
RATES=${RATES:-"5000 10000 20000 30000 40000"}
ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release -q -p loadtest
LOADTEST=$PWD/target/release/loadtest

WORK=$(mktemp -d /tmp/leanstack-bench-loadtest.XXXXXX)
NGINX_PID=
cleanup() {
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORT=$(free_port)
PAGE=$(python3 -c 'print("<!doctype html><title>post</title><p>" + "lorem ipsum " * 170 + "</p>")')
POSTS=$(python3 -c 'import json; print(json.dumps({"posts": [{"slug": f"post-{i}", "tags": [f"tag-{i % 7}"]} for i in range(100)], "has_next": False}))')
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK;
    proxy_temp_path $WORK;
    fastcgi_temp_path $WORK;
    uwsgi_temp_path $WORK;
    scgi_temp_path $WORK;
    server {
        listen 127.0.0.1:$PORT;
        location = /api/posts { default_type application/json; return 200 '$POSTS'; }
        location / { default_type text/html; return 200 '$PAGE'; }
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/api/posts" >/dev/null 2>&1 && break; sleep 0.1; done
TARGET="http://127.0.0.1:$PORT"

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${DURATION}s per run"
run_loadtest() {
    taskset -c "$CLIENT_CPU" "$LOADTEST" --target "$TARGET" --no-progress --logged-in-share 0 \
        --duration "${DURATION}s" --report-html "$WORK/report.html" --report-json "$WORK/report.json" \
        "$@" >/dev/null 2>"$WORK/loadtest.log"
}

echo "== closed loop, $CONNECTIONS connections, client on CPU $CLIENT_CPU, nginx on CPU $SERVER_CPU"
echo "   (wrk and loadtest alternate for $ROUNDS rounds and the best of each counts: other work on"
echo "   the machine only ever slows a run down)"
WRK_RPS=0 LT_RPS=0
for round in $(seq "$ROUNDS"); do
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$TARGET/posts/post-1" >"$WORK/wrk.txt"
    rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")
    printf "round %s  wrk       %8.0f req/s  p99 %s\n" "$round" "$rps" "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")"
    (($(echo "$rps > $WRK_RPS" | bc))) && WRK_RPS=$rps
    run_loadtest --users "$CONNECTIONS"
    rps=$(jq '.throughput' "$WORK/report.json")
    printf "round %s  loadtest  %8.0f req/s  p99 %.2fms\n" "$round" "$rps" "$(jq '.latency.p99_ms' "$WORK/report.json")"
    (($(echo "$rps > $LT_RPS" | bc))) && LT_RPS=$rps
done
printf "best: wrk %.0f req/s, loadtest %.0f req/s: loadtest = %.2f × wrk\n" "$WRK_RPS" "$LT_RPS" \
    "$(echo "$LT_RPS / $WRK_RPS" | bc -l)"

echo "== open loop, at most $CONNECTIONS in flight (latency from the due time), client on CPU $CLIENT_CPU"
printf "%10s %12s %10s %10s %8s\n" "rate" "completed/s" "p50 ms" "p99 ms" "errors"
for rate in $RATES; do
    run_loadtest --rate "$rate" --max-in-flight "$CONNECTIONS"
    jq -r --arg rate "$rate" '[$rate, (.throughput|floor), .latency.p50_ms, .latency.p99_ms, .errors] | @tsv' \
        "$WORK/report.json" | awk '{ printf "%10s %12s %10.2f %10.2f %8s\n", $1, $2, $3, $4, $5 }'
done
