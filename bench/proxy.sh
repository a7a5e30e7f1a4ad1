#!/usr/bin/env bash
# Benchmark: leanstack's proxy against nginx proxy_cache, Varnish and Squid, in one run.
# leanstack runs twice: as `cargo build --release` builds it, and built with profile-guided
# optimisation (leanstack-pgo, built and trained by bench/proxy-pgo.sh).
#
# Each server under test is pinned to CPU 0 and wrk (plus the origin, an nginx serving static
# files, bench/origin.sh) to CPU 1. Scenarios: HITs of a 4 KiB and a 64 KiB cached object at 64
# and 256 connections, and an uncacheable pass-through (Cache-Control: no-store) at 64 connections.
# Reported per server and scenario: req/s, p50, p99, and server CPU µs per request (utime+stime
# of the server's whole process tree over the run, divided by the requests wrk completed).
#
# Needs root (installs nginx, varnish, squid and wrk with apt-get when missing). Not run by CI.
# Usage: [SERVERS="leanstack nginx"] [SCENARIOS="/pass 64;/4k 64"] [ROUNDS=3] bench/proxy.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/origin.sh
source bench/origin.sh

DURATION=${1:-10}
# ROUNDS=3 measures every cell three times, servers in a rotating order, and reports medians.
ROUNDS=${ROUNDS:-1}
WORK=$(mktemp -d /tmp/leanstack-bench-proxy.XXXXXX)
chmod 755 "$WORK"
ORIGIN_PORT=9101
declare -A PORT=([leanstack]=8181 [nginx]=8182 [varnish]=8183 [squid]=8184 [leanstack-pgo]=8185)
# Admin listeners of the two leanstack builds, and bench/proxy-pgo.sh's training proxy.
OTHER_PORTS=(9180 9185 8189 9189)
# SERVERS="leanstack nginx" bench/proxy.sh compares a subset (nginx is the ratios' baseline).
read -r -a SERVERS <<<"${SERVERS:-leanstack leanstack-pgo nginx varnish squid}"
PIDS=()
# Other work on the machine (compilers) would otherwise take turns on the measured cores; every
# server and wrk get the same raised priority. With autogroup scheduling (most desktops and
# containers), nice only counts within a session, so the whole session of this script is raised.
PIN_SERVER="nice -n -10 taskset -c 0"
PIN_CLIENT="nice -n -10 taskset -c 1"
AUTOGROUP_NICE=$(awk '{print $3}' /proc/self/autogroup 2>/dev/null || true)
[[ -n $AUTOGROUP_NICE ]] && echo -10 >/proc/self/autogroup

cleanup() {
    # A stopped server would hold its signals until continued.
    for server in "${SERVERS[@]}"; do resume "$server"; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pidfile in origin.pid nginx.pid varnish/varnishd.pid squid.pid; do
        # A server stopped above may remove its pid file between the test and the read.
        [[ -s $WORK/$pidfile ]] && kill "$(cat "$WORK/$pidfile" 2>/dev/null)" 2>/dev/null || true
    done
    sleep 1
    rm -rf "$WORK"
    [[ -n $AUTOGROUP_NICE ]] && echo "$AUTOGROUP_NICE" >/proc/self/autogroup || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM

install_peers() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    command -v varnishd >/dev/null || missing+=(varnish)
    command -v squid >/dev/null || missing+=(squid)
    command -v wrk >/dev/null || missing+=(wrk)
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # The packages start their own daemons; this script runs private ones.
    for unit in nginx varnish squid; do service "$unit" stop >/dev/null 2>&1 || true; done
}

# Every server runs in the foreground as a job of this script: a daemon would start a session
# of its own and escape the priority set above.
start_origin() {
    write_origin "$WORK" "$ORIGIN_PORT"
    $PIN_CLIENT nginx -c "$WORK/origin.conf" &
    PIDS+=($!)
}

# Usage: run_proxy SERVER BINARY ADMIN_PORT
run_proxy() {
    RUST_LOG=warn $PIN_SERVER "$2" --backend "127.0.0.1:$ORIGIN_PORT" \
        --listen "127.0.0.1:${PORT[$1]}" --admin-listen "127.0.0.1:$3" &
    PIDS+=($!)
    echo $! >"$WORK/$1.pid"
}

start_leanstack() {
    [[ -n ${SKIP_BUILD:-} ]] || cargo build --release -q -p proxy
    run_proxy leanstack target/release/proxy 9180
}

# The training needs the origin, which is started first.
start_leanstack-pgo() {
    [[ -n ${SKIP_BUILD:-} ]] || bench/proxy-pgo.sh "127.0.0.1:$ORIGIN_PORT"
    run_proxy leanstack-pgo target/pgo/proxy 9185
}

start_nginx() {
    mkdir -p "$WORK/nginx-cache"
    chmod 777 "$WORK/nginx-cache"
    cat >"$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    # Debian's defaults would hold small responses back waiting for a full packet.
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 1000000;
    proxy_cache_path $WORK/nginx-cache keys_zone=bench:64m max_size=256m;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The fields leanstack adds (X-Forwarded-For and Via, which Varnish and Squid add
            # too, and X-Forwarded-Proto and -Host) and the client's Host, as nginx's usual
            # reverse-proxy configuration sends them: without them nginx does less per request.
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx";
            proxy_cache bench;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF
    $PIN_SERVER nginx -c "$WORK/nginx.conf" &
    PIDS+=($!)
}

start_varnish() {
    mkdir -p "$WORK/varnish"
    $PIN_SERVER varnishd -F -n "$WORK/varnish" -P "$WORK/varnish/varnishd.pid" \
        -a "127.0.0.1:${PORT[varnish]}" -b "127.0.0.1:$ORIGIN_PORT" -s malloc,256m \
        >"$WORK/varnish.log" 2>&1 &
    PIDS+=($!)
}

start_squid() {
    mkdir -p "$WORK/squid"
    chown proxy: "$WORK/squid" 2>/dev/null || chmod 777 "$WORK/squid"
    cat >"$WORK/squid.conf" <<EOF
http_port 127.0.0.1:${PORT[squid]} accel defaultsite=127.0.0.1 vhost
cache_peer 127.0.0.1 parent $ORIGIN_PORT 0 no-query originserver name=origin
http_access allow all
cache_peer_access origin allow all
cache_mem 256 MB
maximum_object_size_in_memory 1 MB
access_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid.pid
coredump_dir $WORK/squid
shutdown_lifetime 1 second
EOF
    $PIN_SERVER squid -N -f "$WORK/squid.conf" &
    PIDS+=($!)
}

# The pid whose process tree is the server, for CPU accounting.
server_root() {
    case $1 in
    leanstack | leanstack-pgo) cat "$WORK/$1.pid" ;;
    nginx) cat "$WORK/nginx.pid" ;;
    varnish) cat "$WORK/varnish/varnishd.pid" 2>/dev/null || pgrep -f "varnishd -F -n $WORK/varnish" | head -1 ;;
    squid) cat "$WORK/squid.pid" 2>/dev/null || pgrep -f "squid -N -f $WORK/squid.conf" | head -1 ;;
    esac
}

tree() {
    local pid=$1
    echo "$pid"
    for child in $(pgrep -P "$pid"); do tree "$child"; done
}

# Every server is pinned to the measured CPU, so one waiting for its turn must not run there:
# Varnish's and Squid's housekeeping threads (and a server still closing the previous run's
# connections) would take time from the one being measured. Idle servers are stopped with
# SIGSTOP and continued for their own runs.
pause() {
    kill -STOP $(tree "$(server_root "$1")") 2>/dev/null || true
}

resume() {
    kill -CONT $(tree "$(server_root "$1")") 2>/dev/null || true
}

# utime+stime in clock ticks of a process tree.
cpu_ticks() {
    local total=0
    for pid in $(tree "$1"); do
        [[ -r /proc/$pid/stat ]] || continue
        # Fields after the parenthesised command: utime is 14th, stime 15th of the whole line.
        read -r utime stime < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
        total=$((total + utime + stime))
    done
    echo "$total"
}

wait_port() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/4k" && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    return 1
}

# Prints: req/s p50 p99 cpu_us_per_request
measure() {
    local server=$1 path=$2 connections=$3
    local url="http://127.0.0.1:${PORT[$server]}$path"
    # Fill the cache and warm up connections.
    $PIN_CLIENT wrk -t1 -c"$connections" -d2s "$url" >/dev/null
    local root before after out
    root=$(server_root "$server")
    before=$(cpu_ticks "$root")
    out=$($PIN_CLIENT wrk -t1 -c"$connections" -d"${DURATION}s" --latency "$url")
    after=$(cpu_ticks "$root")
    local requests rps p50 p99 ticks_per_s
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    ticks_per_s=$(getconf CLK_TCK)
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$requests" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    echo "$rps $p50 $p99 $cpu_us"
}

# A stale server left on one of these ports (a crashed earlier run, a profiling session) would
# answer in place of the one this run starts, which then fails to bind: measured, silently, was
# the wrong process.
check_ports_free() {
    local busy=()
    for port in "$ORIGIN_PORT" "${OTHER_PORTS[@]}" "${PORT[@]}"; do
        ss -Hltn "sport = :$port" | grep -q . && busy+=("$port")
    done
    if ((${#busy[@]})); then
        echo "ports in use, stop what listens there first: ${busy[*]}" >&2
        ss -Hltnp | grep -E ":($(IFS='|'; echo "${busy[*]}"))\b" >&2 || true
        exit 1
    fi
}

install_peers
check_ports_free
start_origin
for server in "${SERVERS[@]}"; do "start_$server"; done
for server in "${SERVERS[@]}"; do wait_port "${PORT[$server]}"; done

echo "Cache status of a second GET of /4k through each server:"
for server in "${SERVERS[@]}"; do
    curl -s -o /dev/null "http://127.0.0.1:${PORT[$server]}/4k"
    printf '  %-13s %s\n' "$server" \
        "$(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[$server]}/4k" | grep -iE '^(x-cache|age|x-varnish):' | tr -d '\r' | tr '\n' ' ')"
done
echo
for server in "${SERVERS[@]}"; do pause "$server"; done

# SCENARIOS="/pass 64;/4k 64" runs a subset (path and connections, separated by ';').
IFS=';' read -r -a scenarios <<<"${SCENARIOS:-/4k 64;/4k 256;/64k 64;/64k 256;/pass 64}"
declare -A RESULT
date -u +"Run: %Y-%m-%d %H:%M UTC, ${DURATION}s per run, $ROUNDS round(s), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
# Neighbours' load (other sessions' compilers) moves absolute numbers; say how much there was.
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| scenario | server | req/s | p50 | p99 | server CPU µs/req | req/s vs nginx | each round vs nginx |"
echo "|---|---|---:|---:|---:|---:|---:|---|"
for scenario in "${scenarios[@]}"; do
    read -r path connections <<<"$scenario"
    declare -A ROUND_RESULTS=() RATIOS=()
    for round in $(seq "$ROUNDS"); do
        # Servers take turns in a rotating order, so drift on a shared machine hits all alike.
        for i in "${!SERVERS[@]}"; do
            server=${SERVERS[$(((i + round - 1) % ${#SERVERS[@]}))]}
            resume "$server"
            RESULT[$server]=$(measure "$server" "$path" "$connections")
            pause "$server"
            ROUND_RESULTS[$server]+="${RESULT[$server]}"$'\n'
        done
        read -r nginx_rps _ <<<"${RESULT[nginx]}"
        for server in "${SERVERS[@]}"; do
            read -r rps _ <<<"${RESULT[$server]}"
            RATIOS[$server]+=$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN { if (b > 0) printf "%.2f ", a / b }')
        done
    done
    # Per server, the round with the median req/s (its latencies and CPU with it), and the
    # median of the same-round ratios.
    for server in "${SERVERS[@]}"; do
        read -r rps p50 p99 cpu < <(sort -n <<<"${ROUND_RESULTS[$server]%$'\n'}" | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }')
        ratio=$(tr ' ' '\n' <<<"${RATIOS[$server]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        echo "| $path @ $connections | $server | $rps | $p50 | $p99 | $cpu | $ratio | ${RATIOS[$server]% } |"
    done
    unset ROUND_RESULTS RATIOS
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
