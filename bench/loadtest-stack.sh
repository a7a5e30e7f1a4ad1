#!/usr/bin/env bash
# End-to-end benchmark of the whole path (the record in docs/benchmarks.md): the load generator
# offers the realistic mix open-loop at rising arrival rates to
#   leanstack:      our proxy → 3 app servers → our 3 cache nodes → PostgreSQL
#   varnish+redis:  Varnish   → 3 app servers → 3 redis-servers    → PostgreSQL
# and reports, per rate, throughput, p50/p99 latency (from the due time), errors, the share of
# answers served from the front cache, the balance over the apps and the share of page reads that
# reached the database; then the highest rate held with p99 under 50 ms and no errors.
#
# Every server (PostgreSQL included) is pinned to CPU 0 and the generator to CPU 1; all listen on
# 127.0.0.1 only. The database is seeded with 10 000 posts and 100 000 comments (app seed).
# With Varnish the apps get no purge endpoint (Varnish has no tag purges here), so pages stay
# cached for their s-maxage after a comment — as they would behind a plain Varnish.
# Needs root for apt-get when varnish or redis-server are missing. Not run by CI.
# Usage: [STACKS="leanstack varnish"] [RATES="500 1000 …"] bench/loadtest-stack.sh [seconds per rate, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
RATES=${RATES:-"500 1000 2000 3000 4000 5000 6000 7000 8000 10000"}
read -r -a STACKS <<<"${STACKS:-leanstack varnish}"
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
P99_LIMIT_MS=50

missing=()
command -v varnishd >/dev/null || missing+=(varnish)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for unit in varnish redis-server; do service "$unit" stop >/dev/null 2>&1 || true; done
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[[ -x $PG_BIN/initdb ]] || { echo "needs PostgreSQL: apt-get install postgresql" >&2; exit 1; }

cargo build --release -q -p app -p cache -p proxy -p loadtest
BIN=$PWD/target/release

WORK=$(mktemp -d /tmp/leanstack-bench-stack.XXXXXX)
PIDS=()
stop_servers() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    if [[ -f $WORK/varnish/varnishd.pid ]]; then
        kill "$(cat "$WORK/varnish/varnishd.pid")" 2>/dev/null || true
        rm -f "$WORK/varnish/varnishd.pid"
    fi
}
cleanup() {
    stop_servers
    [[ -f $WORK/pg/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return; sleep 0.1; done; echo "$1 did not answer" >&2; exit 1; }
pin() { taskset -c "$SERVER_CPU" "$@"; }

echo "== PostgreSQL and the seed"
# PostgreSQL (as postgres) writes under it, Varnish's compiler (as its own user) reads the VCL.
[[ $(id -u) == 0 ]] && chown postgres: "$WORK"
chmod 755 "$WORK"
PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
as_pg taskset -c "$SERVER_CPU" "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg.log" \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300" \
    start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
"$BIN/app" migrate
pin "$BIN/app" seed --users 200 --posts 10000 --comments 100000 --seed 1 2>/dev/null
psql -qAt "$DATABASE_URL" -c "ANALYZE" >/dev/null

start_cache_nodes() { # leanstack|redis → CACHE_NODES, CACHE_ADDRS (comma-separated)
    local addrs=()
    for _ in 1 2 3; do
        local port
        port=$(free_port)
        if [[ $1 == leanstack ]]; then
            pin "$BIN/cache" --listen "127.0.0.1:$port" --memcache-listen off --metrics-listen off \
                --max-memory 256m 2>>"$WORK/cache.log" &
        else
            pin redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
                --maxmemory 256mb --maxmemory-policy allkeys-lru >>"$WORK/redis.log" 2>&1 &
        fi
        PIDS+=("$!")
        addrs+=("127.0.0.1:$port")
    done
    CACHE_ADDRS=$(IFS=,; echo "${addrs[*]}")
    sleep 0.5
}
start_apps() { # proxy-admin-url|"" → APP_PORTS, APP_METRICS
    APP_PORTS=()
    local metrics=()
    for n in 1 2 3; do
        local port
        port=$(free_port)
        local purge=()
        [[ -n $1 ]] && purge=(--proxy-admin-url "$1")
        RUST_LOG=warn pin "$BIN/app" serve --listen "127.0.0.1:$port" --instance-name "app-$n" \
            --cache-nodes "$CACHE_ADDRS" "${purge[@]}" 2>>"$WORK/app.log" &
        PIDS+=("$!")
        APP_PORTS+=("$port")
        metrics+=("http://127.0.0.1:$port/metrics")
        wait_http "http://127.0.0.1:$port/readyz"
    done
    APP_METRICS=$(IFS=,; echo "${metrics[*]}")
}
start_leanstack_proxy() { # port admin-port
    local backends=()
    local port
    for port in "${APP_PORTS[@]}"; do backends+=("\"127.0.0.1:$port\""); done
    cat >"$WORK/proxy.toml" <<EOF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"

[cache]
max_memory = "256MiB"
default_grace = "30s"

[pools.app]
backends = [$(IFS=,; echo "${backends[*]}")]
balance = "least_outstanding"

[[routes]]
path_prefix = "/"
pool = "app"
bypass_cookies = ["leanstack_session"]
strip_cookies = true
EOF
    RUST_LOG=warn pin "$BIN/proxy" --config "$WORK/proxy.toml" 2>>"$WORK/proxy.log" &
    PIDS+=("$!")
    wait_http "http://127.0.0.1:$2/metrics"
}
start_varnish() { # port
    mkdir -p "$WORK/varnish"
    {
        echo 'vcl 4.1;'
        echo 'import directors;'
        local n=0 port
        for port in "${APP_PORTS[@]}"; do
            n=$((n + 1))
            echo "backend app$n { .host = \"127.0.0.1\"; .port = \"$port\"; }"
        done
        echo 'sub vcl_init { new apps = directors.round_robin();'
        for i in $(seq "$n"); do echo "  apps.add_backend(app$i);"; done
        echo '}'
        # Varnish's built-in VCL passes requests that carry a cookie (the logged-in users) and
        # caches the rest by s-maxage; X-Cache tells the generator what happened.
        echo 'sub vcl_recv { set req.backend_hint = apps.backend(); }'
        echo 'sub vcl_deliver {'
        echo '  if (obj.uncacheable) { set resp.http.X-Cache = "PASS"; }'
        echo '  elsif (obj.hits > 0) { set resp.http.X-Cache = "HIT"; }'
        echo '  else { set resp.http.X-Cache = "MISS"; }'
        echo '}'
    } >"$WORK/stack.vcl"
    pin varnishd -n "$WORK/varnish" -P "$WORK/varnish/varnishd.pid" -a "127.0.0.1:$1" \
        -f "$WORK/stack.vcl" -s malloc,256m >>"$WORK/varnish.log" 2>&1
    wait_http "http://127.0.0.1:$1/healthz"
}

# Both stacks run side by side (idle ones cost next to nothing) and the rates alternate between
# them, so that whatever else the machine is doing weighs on both alike.
declare -A TARGET FLAGS BEST STOPPED
for stack in "${STACKS[@]}"; do
    front_port=$(free_port)
    case $stack in
    leanstack)
        admin=$(free_port)
        start_cache_nodes leanstack
        start_apps "http://127.0.0.1:$admin"
        start_leanstack_proxy "$front_port" "$admin"
        FLAGS[$stack]="--proxy-admin http://127.0.0.1:$admin --metrics $APP_METRICS --cache-node $CACHE_ADDRS"
        ;;
    varnish)
        start_cache_nodes redis
        start_apps ""
        start_varnish "$front_port"
        FLAGS[$stack]="--metrics $APP_METRICS --cache-node $CACHE_ADDRS"
        ;;
    *) echo "unknown stack $stack (leanstack, varnish)" >&2; exit 1 ;;
    esac
    TARGET[$stack]="http://127.0.0.1:$front_port"
    BEST[$stack]=none
    STOPPED[$stack]=
    # Warm the caches and sign the generator's accounts up before measuring.
    taskset -c "$CLIENT_CPU" "$BIN/loadtest" --target "${TARGET[$stack]}" --no-progress --rate 500 \
        --duration 10s --report-html "$WORK/warm.html" >/dev/null 2>>"$WORK/loadtest.log"
    echo "| rate | completed/s | p50 ms | p99 ms | errors | front cache hits | apps (req) | page reads reaching the DB |" >"$WORK/$stack.md"
    echo "|---:|---:|---:|---:|---:|---:|---|---:|" >>"$WORK/$stack.md"
done

echo "== ${DURATION}s per rate, servers on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU"
for rate in $RATES; do
    for stack in "${STACKS[@]}"; do
        [[ -n ${STOPPED[$stack]} ]] && continue
        read -r -a flags <<<"${FLAGS[$stack]}"
        json="$WORK/$stack-$rate.json"
        taskset -c "$CLIENT_CPU" "$BIN/loadtest" --target "${TARGET[$stack]}" --no-progress --rate "$rate" \
            --duration "${DURATION}s" --report-html "$WORK/$stack-$rate.html" --report-json "$json" \
            "${flags[@]}" >/dev/null 2>>"$WORK/loadtest.log"
        jq -r --arg rate "$rate" '
            def pct(x): if x == null then "–" else "\(x * 10000 | round / 100)%" end;
            ((.cache_statuses.HIT // 0) + (.cache_statuses.STALE // 0)) as $hits
            | "| \($rate) | \(.throughput | floor) | \(.latency.p50_ms * 100 | round / 100) | \(.latency.p99_ms * 100 | round / 100) | \(.errors) | \(pct(if .requests > 0 then $hits / .requests else null end)) | \(.balance.by_instance | to_entries | map("\(.value)") | join(" / ")) | \(pct(.database.share)) |"
        ' "$json" >>"$WORK/$stack.md"
        if jq -e --argjson limit "$P99_LIMIT_MS" '.latency.p99_ms < $limit and .errors == 0' "$json" >/dev/null; then
            BEST[$stack]=$rate
        else
            STOPPED[$stack]=yes
        fi
        echo "$stack at $rate req/s: $(tail -1 "$WORK/$stack.md")"
    done
done
for stack in "${STACKS[@]}"; do
    echo
    echo "== $stack"
    cat "$WORK/$stack.md"
    echo
    echo "$stack: highest arrival rate held with p99 under ${P99_LIMIT_MS} ms and no errors: ${BEST[$stack]} req/s"
done
echo
echo "(machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F); command: bench/loadtest-stack.sh $DURATION)"
