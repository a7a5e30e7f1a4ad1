#!/usr/bin/env bash
# Benchmarks the cache node against redis-server and memcached, in one run on this machine:
# each server pinned to one core (SERVER_CPU) and the load generator to another (CLIENT_CPU).
#
#   RESP:       redis-benchmark, SET and GET, 100 B and 4 KiB values, with -P 16 and without
#   memcached:  memcaslap (its default 9:1 get/set mix), 100 B and 4 KiB values (memcaslap
#               reports throughput only, no latency percentiles)
#   memory:     RSS growth per item after storing 1M items with 100-byte values, and the node's
#               RSS after a write flood of about four times its --max-memory
#
# Reports ops/s, p50/p99 where the tool gives them, and the server's CPU time per operation
# (utime+stime from /proc, so it is the server's own cost whatever else the machine does).
# Not run by CI. Usage: bench/cache-node.sh   (REQUESTS=200000 SECONDS_PER_RUN=10 to change;
# PARTS="resp memcache" to run only some of: resp memcache memory flood)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
ITEMS=${ITEMS:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PARTS=${PARTS:-resp memcache memory flood}
part() { [[ " $PARTS " == *" $1 "* ]]; }

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need redis-server || missing+=(redis-server)
need memcached || missing+=(memcached)
need memcaslap || missing+=(libmemcached-tools)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release -q -p cache --bin cache
node_bin=target/release/cache

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
clk_tck=$(getconf CLK_TCK)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME PORT [MCPORT] -> sets $pid
start() {
    local name=$1 port=$2 mcport=${3:-}
    case $name in
        redis) taskset -c "$SERVER_CPU" redis-server --port "$port" --save '' --appendonly no --protected-mode no >/dev/null 2>&1 & ;;
        memcached) taskset -c "$SERVER_CPU" memcached -u "$(id -un)" -p "$port" -U 0 -t 1 -m 1024 -c 4096 -l 127.0.0.1 >/dev/null 2>&1 & ;;
        cache) taskset -c "$SERVER_CPU" "$node_bin" --threads 1 --listen "127.0.0.1:$port" \
                   --memcache-listen "127.0.0.1:$mcport" --metrics-listen off \
                   --max-memory "${MAX_MEMORY:-1g}" --max-connections 4096 >/dev/null 2>&1 & ;;
    esac
    pid=$!
    pids+=("$pid")
    wait_port "$port"
}

echo "# cache node benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "# servers on CPU $SERVER_CPU, load generators on CPU $CLIENT_CPU; $(redis-server --version | cut -d' ' -f3), memcached $(memcached -V | cut -d' ' -f2)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if part resp; then
echo "## RESP (redis-benchmark -n $REQUESTS -c 50)"
echo
echo "| server | test | value | pipeline | ops/s | p50 ms | p99 ms | server CPU µs/op |"
echo "|---|---|---|---|---|---|---|---|"
for server in redis cache; do
    port=$(free_port); mcport=$(free_port)
    start "$server" "$port" "$mcport"
    for size in 100 4096; do
        for pipeline in 1 16; do
            for test in set get; do
                before=$(cpu_ticks "$pid")
                csv=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -t "$test" -n "$REQUESTS" -c 50 \
                          -d "$size" -P "$pipeline" -r 100000 --csv | tail -1)
                after=$(cpu_ticks "$pid")
                IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${csv//\"/}"
                cpu=$(echo "($after - $before) * 1000000 / $clk_tck / $REQUESTS" | bc -l)
                printf '| %s | %s | %s B | %s | %.0f | %s | %s | %.2f |\n' \
                    "$server" "${test^^}" "$size" "$pipeline" "$rps" "$p50" "$p99" "$cpu"
            done
        done
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo
fi

if part memcache; then
echo "## memcached protocol (memcaslap -t ${SECONDS_PER_RUN}s -T 1 -c 32, 9:1 get/set)"
echo
echo "| server | value | ops/s | server CPU µs/op |"
echo "|---|---|---|---|"
for server in memcached cache; do
    port=$(free_port); mcport=$(free_port)
    if [[ $server == cache ]]; then start cache "$port" "$mcport"; else start memcached "$mcport"; fi
    for size in 100 4096; do
        before=$(cpu_ticks "$pid")
        out=$(taskset -c "$CLIENT_CPU" memcaslap -s "127.0.0.1:$mcport" -t "${SECONDS_PER_RUN}s" -T 1 -c 32 -X "$size" 2>&1)
        after=$(cpu_ticks "$pid")
        ops=$(sed -n 's/.*Ops: *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
        tps=$(sed -n 's/.*TPS: *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
        cpu=$(echo "($after - $before) * 1000000 / $clk_tck / $ops" | bc -l)
        printf '| %s | %s B | %s | %.2f |\n' "$server" "$size" "$tps" "$cpu"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo
fi

load() { # PROTOCOL PORT
    taskset -c "$CLIENT_CPU" python3 - "$1" "$2" "$ITEMS" <<'EOF'
import socket, sys
protocol, port, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
value = b"v" * 100
batch = 1000
reply = b"+OK\r\n" if protocol == "resp" else b"STORED\r\n"
for start in range(0, items, batch):
    out = []
    for i in range(start, min(start + batch, items)):
        key = b"key:%07d" % i
        if protocol == "resp":
            out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value))
        else:
            out.append(b"set %s 0 0 100\r\n%s\r\n" % (key, value))
    s.sendall(b"".join(out))
    want = len(reply) * len(out)
    got = b""
    while len(got) < want:
        chunk = s.recv(want - len(got))
        if not chunk:
            sys.exit("connection closed")
        got += chunk
    if got != reply * len(out):
        sys.exit("unexpected reply: %r" % got[:80])
EOF
}

if part memory; then
echo "## memory: RSS growth for $ITEMS items, 11-byte keys, 100-byte values"
echo
echo "| server | RSS before MiB | RSS after MiB | bytes per item |"
echo "|---|---|---|---|"
for server in redis memcached cache; do
    port=$(free_port); mcport=$(free_port)
    case $server in
        memcached) start memcached "$port"; protocol=memcache; target=$port ;;
        *) start "$server" "$port" "$mcport"; protocol=resp; target=$port ;;
    esac
    before=$(rss_kb "$pid")
    load "$protocol" "$target"
    after=$(rss_kb "$pid")
    printf '| %s | %.1f | %.1f | %.0f |\n' "$server" "$(echo "$before/1024" | bc -l)" \
        "$(echo "$after/1024" | bc -l)" "$(echo "($after - $before) * 1024 / $ITEMS" | bc -l)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo
fi

if part flood; then
flood_limit_mib=64
echo "## write flood: 2 x $ITEMS writes of 100 bytes into a node with --max-memory ${flood_limit_mib}m"
echo
port=$(free_port); mcport=$(free_port)
MAX_MEMORY=${flood_limit_mib}m start cache "$port" "$mcport"
load resp "$port"
load resp "$port"
info=$(redis-cli -p "$port" INFO)
used=$(sed -n 's/^used_memory:\([0-9]*\).*/\1/p' <<<"$info")
evicted=$(sed -n 's/^evicted_keys:\([0-9]*\).*/\1/p' <<<"$info")
printf '| limit MiB | used_memory MiB | RSS MiB | evicted keys |\n|---|---|---|---|\n'
printf '| %s | %.1f | %.1f | %s |\n' "$flood_limit_mib" "$(echo "$used/1048576" | bc -l)" \
    "$(echo "$(rss_kb "$pid")/1024" | bc -l)" "$evicted"
kill "$pid"; wait "$pid" 2>/dev/null || true
fi
