#!/usr/bin/env bash
# The end-to-end benchmark behind docs/benchmarks.md: the whole stack on this machine, on
# loopback, and the same stack with the peer tools in our components' places:
#
#   leanstack      our proxy → app ×3 → our cache nodes ×3 → PostgreSQL
#   varnish        Varnish   → app ×3 → our cache nodes ×3 → PostgreSQL
#   redis          our proxy → app ×3 → redis-server ×3     → PostgreSQL
#   varnish+redis  Varnish   → app ×3 → redis-server ×3     → PostgreSQL
#
# One private PostgreSQL (initdb/pg_ctl in a temp dir), migrated and seeded with 10 000 posts and
# 100 000 comments, serves all four; each configuration has its own apps and cache nodes. The
# proxy runs deploy/proxy.toml with 127.0.0.1 ports; Varnish runs bench/stack/varnish.vcl, the
# same policy in VCL. The load generator (loadtest, the realistic mix: Zipf(1.1) readers over all
# 10 000 posts, front and tag pages, 5% logged-in users who bypass the cache and comment) runs
# open loop at rising arrival rates. Per configuration a step search finds the highest rate held
# with p99 < 50 ms (from the due time: coordinated omission corrected) and under 0.1% errors:
# the rate grows by GROWTH until a step fails, then REFINE bisection steps narrow it down. The
# configurations take their steps in turn, so that whatever else the machine does weighs on all.
#
# Every server (PostgreSQL included) runs on CPU SERVER_CPU, the generator on CPU CLIENT_CPU
# (taskset). Bounded: the search stops starting steps after SEARCH_BUDGET seconds (default 12
# min), so the whole script ends within about 20 min; every process it started is stopped on
# exit (also on Ctrl-C). Installs varnish, redis-server and jq with apt-get when missing (root).
# Not run by CI. Writes $OUT (default target/bench-stack): per step the loadtest JSON and HTML
# reports, summary.md (the tables for docs/benchmarks.md).
#
# Usage: [CONFIGS="leanstack varnish redis varnish+redis"] [STEP_SECONDS=10] [START_RATE=1000]
#        [GROWTH=1.5] [REFINE=2] [SEARCH_BUDGET=720] [WARM_SECONDS=15] bench/stack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
read -r -a CONFIGS <<<"${CONFIGS:-leanstack varnish redis varnish+redis}"
STEP_SECONDS=${STEP_SECONDS:-10}
START_RATE=${START_RATE:-1000}
GROWTH=${GROWTH:-1.5}
REFINE=${REFINE:-2}
SEARCH_BUDGET=${SEARCH_BUDGET:-720}
WARM_SECONDS=${WARM_SECONDS:-15}
MAX_RATE=${MAX_RATE:-40000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-$ROOT/target/bench-stack}
P99_LIMIT_MS=50
ERROR_LIMIT=0.001

# --- peers and binaries -------------------------------------------------------------------------
missing=()
command -v varnishd >/dev/null || missing+=(varnish)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    echo "== installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The packages start system services; this benchmark starts its own.
    for unit in varnish redis-server; do service "$unit" stop >/dev/null 2>&1 || true; done
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PG_BIN/initdb ]] || { echo "needs PostgreSQL's server binaries: apt-get install postgresql" >&2; exit 1; }

echo "== cargo build --release -p app -p proxy -p cache -p loadtest"
cargo build --release -q -p app -p proxy -p cache -p loadtest
BIN=$ROOT/target/release

# --- process bookkeeping ------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/leanstack-bench-stack.XXXXXX)
# PostgreSQL (as postgres) writes under it; Varnish's compiler (as vcache) reads the VCL there.
chmod 755 "$WORK"
[[ $(id -u) == 0 ]] && chown postgres: "$WORK"
PIDS=()
VARNISH_DIRS=()
cleanup() {
    local pid dir
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for dir in "${VARNISH_DIRS[@]}"; do
        [[ -f $dir/varnishd.pid ]] && kill "$(cat "$dir/varnishd.pid")" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -f $WORK/pg/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 150); do curl -fs -o /dev/null "$1" && return; sleep 0.1; done
    echo "$1 did not answer" >&2
    exit 1
}
wait_tcp() { for _ in $(seq 150); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return; sleep 0.1; done; echo "$1 did not open" >&2; exit 1; }
# Foreground only: a function run with & is a subshell, and $! would be its pid, not the server's
# (which then outlives the kill). Servers are started as `taskset … server &`, and taskset execs.
on_server_cpu() { taskset -c "$SERVER_CPU" "$@"; }
on_client_cpu() { taskset -c "$CLIENT_CPU" "$@"; }
# The machine's state, as recorded in docs/benchmarks.md.
load_average() { cut -d' ' -f1-3 /proc/loadavg; }

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.html "$OUT"/*.md "$OUT"/*.log
{
    echo "date: $(date -u '+%F %T UTC')"
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "servers on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU"
    echo "uptime before: $(uptime)"
} >"$OUT/machine.txt"

# --- PostgreSQL and the seed --------------------------------------------------------------------
echo "== PostgreSQL, migrate, seed (10 000 posts, 100 000 comments)"
PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
as_pg taskset -c "$SERVER_CPU" "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -t 60 -l "$WORK/pg.log" \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export DATABASE_URL
"$BIN/app" migrate
on_server_cpu "$BIN/app" seed --users 200 --posts 10000 --comments 100000 --seed 1 >/dev/null
psql -qAt "$DATABASE_URL" -c "ANALYZE" >/dev/null

# --- the tiers ----------------------------------------------------------------------------------
start_cache_nodes() { # config our|redis → CACHE_ADDRS
    local addrs=() n port
    for n in 1 2 3; do
        port=$(free_port)
        if [[ $2 == our ]]; then
            RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/cache" --listen "127.0.0.1:$port" --memcache-listen off \
                --metrics-listen off --max-memory 256m 2>>"$WORK/$1-cache-$n.log" &
        else
            taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
                --maxmemory 256mb --maxmemory-policy allkeys-lru >>"$WORK/$1-redis-$n.log" 2>&1 &
        fi
        PIDS+=("$!")
        addrs+=("127.0.0.1:$port")
    done
    for port in "${addrs[@]}"; do wait_tcp "$port"; done
    CACHE_ADDRS=$(IFS=,; echo "${addrs[*]}")
}
start_apps() { # config proxy-admin-url|"" → APP_PORTS, APP_METRICS
    APP_PORTS=()
    local metrics=() n port purge=()
    [[ -n $2 ]] && purge=(--proxy-admin-url "$2")
    for n in 1 2 3; do
        port=$(free_port)
        RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/app" serve --listen "127.0.0.1:$port" --instance-name "app-$n" \
            --database-url "$DATABASE_URL" --cache-nodes "$CACHE_ADDRS" "${purge[@]}" 2>>"$WORK/$1-app-$n.log" &
        PIDS+=("$!")
        APP_PORTS+=("$port")
        metrics+=("http://127.0.0.1:$port/metrics")
    done
    for port in "${APP_PORTS[@]}"; do wait_http "http://127.0.0.1:$port/readyz"; done
    APP_METRICS=$(IFS=,; echo "${metrics[*]}")
}
start_our_proxy() { # config port admin-port
    local backends=() port
    for port in "${APP_PORTS[@]}"; do backends+=("\"127.0.0.1:$port\""); done
    # deploy/proxy.toml with loopback addresses; the doorbell is not part of this benchmark, so its
    # pool points at a closed port (its health check simply keeps it out).
    sed -e "s|^listen = .*|listen = \"127.0.0.1:$2\"|" \
        -e "s|^admin_listen = .*|admin_listen = \"127.0.0.1:$3\"|" \
        -e "s|^backends = \[\"app-1.*|backends = [$(IFS=,; echo "${backends[*]}")]|" \
        -e "s|^backends = \[\"doorbell:8090\"\]|backends = [\"127.0.0.1:$(free_port)\"]|" \
        deploy/proxy.toml >"$WORK/$1-proxy.toml"
    "$BIN/proxy" --check --config "$WORK/$1-proxy.toml" >/dev/null
    RUST_LOG=warn,proxy::access=off taskset -c "$SERVER_CPU" "$BIN/proxy" --config "$WORK/$1-proxy.toml" \
        2>>"$WORK/$1-proxy.log" &
    PIDS+=("$!")
    wait_http "http://127.0.0.1:$3/metrics"
}
start_varnish() { # config port
    local dir=$WORK/$1-varnish n=0 port
    mkdir -p "$dir"
    VARNISH_DIRS+=("$dir")
    {
        for port in "${APP_PORTS[@]}"; do
            n=$((n + 1))
            # The proxy's health check: /healthz every 2s, timeout 1s, 2 good to rise, 2 bad to fall.
            echo "backend app$n { .host = \"127.0.0.1\"; .port = \"$port\"; .connect_timeout = 1s; .first_byte_timeout = 15s;"
            echo "  .probe = { .url = \"/healthz\"; .interval = 2s; .timeout = 1s; .window = 2; .threshold = 2; .initial = 2; } }"
        done
        echo 'sub vcl_init {'
        echo '  new apps = directors.round_robin();'
        for n in $(seq "$n"); do echo "  apps.add_backend(app$n);"; done
        echo '}'
    } >"$WORK/$1-backends.vcl"
    sed -e "/^@BACKENDS@$/{r $WORK/$1-backends.vcl" -e 'd}' bench/stack/varnish.vcl >"$WORK/$1.vcl"
    chmod 644 "$WORK/$1.vcl"
    # Same memory bound as the proxy's store (max_memory = "256MiB").
    on_server_cpu varnishd -n "$dir" -P "$dir/varnishd.pid" -a "127.0.0.1:$2" -f "$WORK/$1.vcl" \
        -s malloc,256m >>"$WORK/$1-varnish.log" 2>&1
    wait_http "http://127.0.0.1:$2/healthz"
}

declare -A TARGET FLAGS BEST FAIL NEXT PHASE REFINED
for config in "${CONFIGS[@]}"; do
    echo "== starting $config"
    front=$(free_port)
    case $config in
    leanstack | redis)
        admin=$(free_port)
        [[ $config == leanstack ]] && start_cache_nodes "$config" our || start_cache_nodes "$config" redis
        start_apps "$config" "http://127.0.0.1:$admin"
        start_our_proxy "$config" "$front" "$admin"
        FLAGS[$config]="--proxy-admin http://127.0.0.1:$admin"
        ;;
    varnish | varnish+redis)
        # Varnish has no tag purges: its apps purge nothing, and a page stays cached for its
        # s-maxage after a comment, as behind a plain Varnish.
        [[ $config == varnish ]] && start_cache_nodes "$config" our || start_cache_nodes "$config" redis
        start_apps "$config" ""
        start_varnish "$config" "$front"
        FLAGS[$config]=""
        ;;
    *) echo "unknown configuration $config (leanstack, varnish, redis, varnish+redis)" >&2; exit 1 ;;
    esac
    FLAGS[$config]+=" --metrics $APP_METRICS --cache-node $CACHE_ADDRS"
    TARGET[$config]="http://127.0.0.1:$front"
    BEST[$config]=0
    FAIL[$config]=0
    NEXT[$config]=$START_RATE
    PHASE[$config]=grow
    REFINED[$config]=0
done

# One loadtest run: the same mix and bounds for every configuration, and at one rate the same
# requests (the seed is the rate). Each rate gets its own seed, so that a step does not replay the
# visitors of an earlier one and find exactly the pages they left in the caches.
loadtest() { # config rate seconds name
    local flags
    read -r -a flags <<<"${FLAGS[$1]}"
    on_client_cpu "$BIN/loadtest" --target "${TARGET[$1]}" --no-progress --rate "$2" --duration "${3}s" \
        --discover-pages 500 --seed "$2" "${flags[@]}" \
        --report-html "$OUT/$4.html" --report-json "$OUT/$4.json" >"$OUT/$4.txt" 2>>"$OUT/loadtest.log"
}
# Warm every tier (and create the generator's accounts) before anything is measured.
for config in "${CONFIGS[@]}"; do
    echo "== warming $config"
    loadtest "$config" 1001 "$WARM_SECONDS" "$config-warm" # 1001 req/s: a seed no step uses
done

passed() { # json
    jq -e --argjson p99 "$P99_LIMIT_MS" --argjson errors "$ERROR_LIMIT" \
        '.latency.p99_ms < $p99 and .error_ratio < $errors' "$1" >/dev/null
}
round_rate() { python3 -c "print(max(100, round($1 / 100) * 100))"; }
# The step search, one configuration's step at a time, until each is done or the budget is spent.
echo "== step search: ${STEP_SECONDS}s per step, servers on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU"
search_started=$SECONDS
while :; do
    active=0
    for config in "${CONFIGS[@]}"; do
        [[ ${PHASE[$config]} == done ]] && continue
        if ((SECONDS - search_started >= SEARCH_BUDGET)); then
            echo "   time budget spent: $config stops at its last result"
            PHASE[$config]=done
            continue
        fi
        active=1
        rate=${NEXT[$config]}
        loadtest "$config" "$rate" "$STEP_SECONDS" "$config-$rate"
        if passed "$OUT/$config-$rate.json"; then verdict=held; BEST[$config]=$rate; else verdict=missed; FAIL[$config]=$rate; fi
        echo "   $config $rate req/s: $verdict ($(jq -r '"p50 \(.latency.p50_ms) ms, p99 \(.latency.p99_ms) ms, \(.errors) errors, \(.throughput | floor) done/s"' "$OUT/$config-$rate.json"))"
        if [[ ${PHASE[$config]} == grow && $verdict == held ]]; then
            NEXT[$config]=$(round_rate "$rate * $GROWTH")
            ((NEXT[$config] > MAX_RATE)) && PHASE[$config]=done
        else
            PHASE[$config]=refine
            if ((REFINED[$config] >= REFINE || FAIL[$config] - BEST[$config] <= 200)); then
                PHASE[$config]=done
            else
                REFINED[$config]=$((REFINED[$config] + 1))
                low=${BEST[$config]}
                ((low == 0)) && low=$((FAIL[$config] / 4))
                NEXT[$config]=$(round_rate "($low + ${FAIL[$config]}) / 2")
            fi
        fi
    done
    ((active)) || break
done
echo "uptime after: $(uptime)" >>"$OUT/machine.txt"

# --- the record ---------------------------------------------------------------------------------
# The front-cache share is counted from each answer's X-Cache (HIT or STALE), the same way for
# our proxy and Varnish; the pool's from the apps' cache_pool_hits/misses counters; the
# database's share from the apps' Server-Timing (page reads an app built that ran queries).
row() { # json rate
    jq -r --arg rate "$2" '
        def pct(x): if x == null then "–" else "\(x * 1000 | round / 10)%" end;
        def ms(x): x * 10 | round / 10;
        ((.cache_statuses | to_entries | map(select(.key | startswith("HIT") or . == "STALE")) | map(.value) | add) // 0) as $front
        | ([.tiers.pool_nodes[] | .hits] | add // 0) as $hits
        | ([.tiers.pool_nodes[] | .hits + .misses] | add // 0) as $lookups
        | "| \($rate) | \(.throughput | floor) | \(ms(.latency.p50_ms)) | \(ms(.latency.p99_ms)) | \(.errors) | \(pct(if .requests > 0 then $front / .requests else null end)) | \(pct(if $lookups > 0 then $hits / $lookups else null end)) | \(pct(.database.share)) | \(.balance.by_instance | to_entries | map("\(.value)") | join(" / ")) |"
    ' "$1"
}
{
    cat "$OUT/machine.txt"
    echo "command: CONFIGS=\"${CONFIGS[*]}\" STEP_SECONDS=$STEP_SECONDS START_RATE=$START_RATE GROWTH=$GROWTH REFINE=$REFINE SEARCH_BUDGET=$SEARCH_BUDGET bench/stack.sh"
    for config in "${CONFIGS[@]}"; do
        echo
        echo "### $config: highest rate held (p99 < ${P99_LIMIT_MS} ms, errors < 0.1%): ${BEST[$config]} req/s"
        echo
        echo "| rate (req/s) | completed/s | p50 ms | p99 ms | errors | front cache hits | pool hits | page reads reaching the DB | requests per app |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for rate in $(ls "$OUT" | sed -n "s/^$config-\([0-9]*\)\.json$/\1/p" | sort -n); do
            row "$OUT/$config-$rate.json" "$rate"
        done
    done
    echo
    echo "### ratios (highest rate held, against leanstack)"
    for config in "${CONFIGS[@]}"; do
        [[ $config == leanstack ]] && continue
        echo "- leanstack / $config: $(python3 -c "b=${BEST[$config]}; print(f'{${BEST[leanstack]:-0}/b:.2f}' if b else 'n/a')")"
    done
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
