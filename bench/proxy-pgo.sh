#!/usr/bin/env bash
# Builds the proxy with profile-guided optimisation (PGO) into target/pgo/proxy:
#   1. a release build instrumented to count which branches and calls run (-Cprofile-generate);
#   2. a training run of that build against ORIGIN: HITs of small and large objects at 64 and
#      256 connections, pass-through, misses on distinct keys (fetched and stored), HITs and
#      pass-throughs with a browser's request fields, and revalidations answered with 304;
#   3. the release build again, laid out and inlined by those counts (-Cprofile-use).
# Why: a request through the proxy runs a long path across hyper, http, tokio and the proxy's own
# code, with few hot loops. Knowing which side of each branch runs lets LLVM put the hot code
# together and inline along it; the measured effect is in proxy/README.md ("Built with PGO").
#
# ORIGIN must serve /4k, /64k (cacheable) and /pass (Cache-Control: no-store), as bench/proxy.sh's
# origin does; bench/proxy.sh calls this script for its leanstack-pgo server. Without ORIGIN the
# script starts that origin itself (bench/origin.sh, on port 9109), as the Docker image's build
# does. Needs wrk, curl, nginx when it starts the origin, and the llvm-tools rustup component
# (added when missing).
# Usage: bench/proxy-pgo.sh [ORIGIN_HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/origin.sh
source bench/origin.sh
ORIGIN=${1:-}
LISTEN=127.0.0.1:8189
ADMIN=127.0.0.1:9189

HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# The llvm-profdata that matches rustc's LLVM: a profile is read only by the version that wrote it.
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$HOST_TRIPLE/bin/llvm-profdata
if [[ ! -x $PROFDATA ]]; then
    rustup component add llvm-tools
fi

WORK=$(mktemp -d /tmp/leanstack-pgo.XXXXXX)
# nginx's workers run as an unprivileged user when started by root, and read the files from here.
chmod 755 "$WORK"
PROXY_PID=
ORIGIN_PID=
cleanup() {
    [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
    [[ -n $ORIGIN_PID ]] && kill "$ORIGIN_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --target keeps RUSTFLAGS off build scripts and proc macros, which run at build time only.
build() {
    local target_dir=$1 flags=$2
    RUSTFLAGS=$flags cargo build --release -q -p proxy --target "$HOST_TRIPLE" --target-dir "$target_dir"
    echo "$target_dir/$HOST_TRIPLE/release/proxy"
}

echo "PGO 1/3: instrumented build"
instrumented=$(build target/pgo-generate "-Cprofile-generate=$WORK/raw")

if [[ -z $ORIGIN ]]; then
    ORIGIN=127.0.0.1:9109
    write_origin "$WORK/origin" "${ORIGIN##*:}"
    nginx -c "$WORK/origin/origin.conf" &
    ORIGIN_PID=$!
fi

echo "PGO 2/3: training against $ORIGIN"
RUST_LOG=warn "$instrumented" --backend "$ORIGIN" --listen "$LISTEN" --admin-listen "$ADMIN" &
PROXY_PID=$!
# Ready when a pass-through comes back whole: the proxy and the origin are both up.
ready=
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://$LISTEN/pass" && ready=1 && break
    sleep 0.1
done
[[ -n $ready ]] || { echo "no answer from $ORIGIN through the instrumented proxy" >&2; exit 1; }
cat >"$WORK/distinct.lua" <<'EOF'
-- Every request a key of its own: a miss that is fetched and stored.
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", "/4k?key=" .. n)
end
EOF
for run in "/4k 64" "/4k 256" "/64k 64" "/pass 64" "/pass 256"; do
    read -r path connections <<<"$run"
    wrk -t1 -c"$connections" -d3s "http://$LISTEN$path" >/dev/null
done
wrk -t1 -c64 -d3s -s "$WORK/distinct.lua" "http://$LISTEN/" >/dev/null
# Not only wrk's one-field requests: the fields a browser sends, on HITs and pass-throughs, and
# revalidations the cache answers with 304.
browser=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    -H "Accept-Language: en-GB,en;q=0.5" -H "Accept-Encoding: gzip, deflate, br"
    -H "Cookie: theme=dark" -H "Upgrade-Insecure-Requests: 1" -H "Sec-Fetch-Dest: document"
    -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Site: none" -H "Sec-Fetch-User: ?1")
for path in /4k /pass; do
    wrk -t1 -c64 -d2s "${browser[@]}" "http://$LISTEN$path" >/dev/null
done
etag=$(curl -s -D - -o /dev/null "http://$LISTEN/4k" | tr -d '\r' | sed -n 's/^etag: //Ip')
wrk -t1 -c64 -d2s -H "If-None-Match: $etag" "http://$LISTEN/4k" >/dev/null
# The profile is written when the process exits, and SIGTERM is a graceful exit.
kill -TERM "$PROXY_PID"
wait "$PROXY_PID"
PROXY_PID=
"$PROFDATA" merge -o "$WORK/proxy.profdata" "$WORK/raw"

echo "PGO 3/3: optimised build"
# Functions the training never ran are compiled as usual; LLVM need not warn about each.
optimised=$(build target/pgo-use "-Cprofile-use=$WORK/proxy.profdata -Cllvm-args=-pgo-warn-missing-function=false")
mkdir -p target/pgo
# Unlinked first: a proxy still running from the last build keeps its file busy.
cp --remove-destination "$optimised" target/pgo/proxy
echo "built target/pgo/proxy"
