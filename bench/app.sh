#!/usr/bin/env bash
# Benchmark of the app tier (see app/README.md for the numbers):
#   1. `app seed` of 10 000 posts and 100 000 comments, timed;
#   2. throughput and p99 of the front page and of a post page, with a warm cache against a
#      forced miss (the same app with the cache disabled: every request queries PostgreSQL);
#   3. the share of requests that reach the database on a Zipf(1.1) mix of post pages over the
#      10 000 posts: first from an empty cache, then (another request sequence) on the cache
#      the first run warmed.
# Servers (PostgreSQL, cache node, app) are pinned to CPU 0 and wrk to CPU 1. Everything listens
# on 127.0.0.1 only. Not run by CI. Usage: bench/app.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

if ! command -v wrk >/dev/null; then
    echo "installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[[ -x $PG_BIN/initdb ]] || { echo "needs PostgreSQL: apt-get install postgresql" >&2; exit 1; }

cargo build --release -q -p app -p cache
APP=target/release/app
CACHE=target/release/cache

WORK=$(mktemp -d /tmp/leanstack-bench-app.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -f $WORK/pg/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL, private and throwaway.
[[ $(id -u) == 0 ]] && chown postgres: "$WORK"
PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
as_pg taskset -c "$SERVER_CPU" "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg.log" \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

echo "== seed"
$APP migrate
SEED_START=$(date +%s.%N)
taskset -c "$SERVER_CPU" $APP seed --users 200 --posts 10000 --comments 100000 --seed 1
SEED_END=$(date +%s.%N)
awk -v a="$SEED_START" -v b="$SEED_END" 'BEGIN { printf "seed wall time: %.1f s\n", b - a }'
psql -qAt "$DATABASE_URL" -c "ANALYZE" >/dev/null
psql -qAt "$DATABASE_URL" -c "SELECT slug FROM posts ORDER BY published_at DESC, id DESC" >"$WORK/slugs"
POST=$(head -1 "$WORK/slugs")

start_cache() {
    CACHE_PORT=$(free_port)
    taskset -c "$SERVER_CPU" $CACHE --listen "127.0.0.1:$CACHE_PORT" --memcache-listen off \
        --metrics-listen off --max-memory 512m 2>"$WORK/cache.log" &
    CACHE_PID=$!
    PIDS+=("$CACHE_PID")
}
start_app() { # name cache-nodes
    local port
    port=$(free_port)
    RUST_LOG=warn taskset -c "$SERVER_CPU" $APP serve --listen "127.0.0.1:$port" \
        --instance-name "$1" --cache-nodes "$2" 2>>"$WORK/app.log" &
    PIDS+=("$!")
    APP_URL="http://127.0.0.1:$port"
    for _ in $(seq 100); do $APP healthcheck --url "$APP_URL/readyz" 2>/dev/null && return; sleep 0.1; done
    echo "app did not start" >&2; cat "$WORK/app.log" >&2; exit 1
}
metric() { # url name-and-labels → value (0 if absent)
    curl -s "$1/metrics" | awk -v m="$2" '$1 == m { v = $2 } END { print v + 0 }'
}
load() { # label url [extra wrk args]
    local label=$1 url=$2
    shift 2
    local out
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")
    local rps p99
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    printf '%-28s %10s req/s   p99 %8s\n' "$label" "$rps" "$p99"
    grep -E "Non-2xx|Socket errors" <<<"$out" || true
}

echo "== warm cache vs forced miss (${DURATION}s each, $CONNECTIONS connections)"
start_cache
start_app warm "127.0.0.1:$CACHE_PORT"
WARM=$APP_URL
start_app miss ""
MISS=$APP_URL
curl -s -o /dev/null "$WARM/" && curl -s -o /dev/null "$WARM/posts/$POST"
load "front page, warm cache" "$WARM/"
load "front page, forced miss" "$MISS/"
load "post page, warm cache" "$WARM/posts/$POST"
load "post page, forced miss" "$MISS/posts/$POST"

echo "== Zipf(1.1) over $(wc -l <"$WORK/slugs") posts"
kill "$CACHE_PID"
start_cache
start_app zipf "127.0.0.1:$CACHE_PORT"
post_requests() {
    curl -s "$APP_URL/metrics" | awk '
        /^app_http_requests_total\{/ && index($0, "route=\"/posts/{slug}\"") { total += $2 }
        /^app_http_requests_reaching_db_total\{/ && index($0, "route=\"/posts/{slug}\"") { db += $2 }
        END { print total + 0, db + 0 }'
}
share() { # label before-total before-db
    read -r total db < <(post_requests)
    awk -v l="$1" -v t="$((total - $2))" -v d="$((db - $3))" \
        'BEGIN { printf "%-28s %d requests, %d reached the database: %.2f%%\n", l, t, d, 100 * d / t }'
}
SLUGS="$WORK/slugs" ZIPF_S=1.1 ZIPF_SEED=1 load "Zipf(1.1), empty cache" "$APP_URL" -s bench/app/zipf.lua
share "  from an empty cache:" 0 0
read -r before_total before_db < <(post_requests)
SLUGS="$WORK/slugs" ZIPF_S=1.1 ZIPF_SEED=2 load "Zipf(1.1), warm cache" "$APP_URL" -s bench/app/zipf.lua
share "  second run (warm):" "$before_total" "$before_db"
echo "(machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F))"
