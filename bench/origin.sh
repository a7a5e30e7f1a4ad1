# The origin behind every proxy the benchmark measures, sourced by bench/proxy.sh and
# bench/proxy-pgo.sh: an nginx serving /4k and /64k (cacheable for an hour) and /pass
# (Cache-Control: no-store) from files of exactly that size.
#
# It keeps the files open (open_file_cache) rather than opening, stat-ing and closing one per
# request: a pass-through reaches the origin every time, and the origin shares its CPU with wrk,
# so an origin that costs less leaves the measured proxy, not that CPU, to decide how many
# requests a second get through (proxy/README.md, "The origin out of the way").

# Usage: write_origin DIR PORT — writes DIR/www and DIR/origin.conf (pid file DIR/origin.pid).
write_origin() {
    local dir=$1 port=$2
    mkdir -p "$dir/www"
    # 3 random bytes make 4 base64 characters: exactly 4 KiB and 64 KiB of text.
    head -c 3072 /dev/urandom | base64 -w 0 >"$dir/www/4k"
    head -c 49152 /dev/urandom | base64 -w 0 >"$dir/www/64k"
    cp "$dir/www/4k" "$dir/www/pass"
    cat >"$dir/origin.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/origin.pid;
error_log $dir/origin-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    open_file_cache max=16;
    open_file_cache_valid 1h;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        location = /4k   { add_header Cache-Control "public, max-age=3600"; }
        location = /64k  { add_header Cache-Control "public, max-age=3600"; }
        location = /pass { add_header Cache-Control "no-store"; }
    }
}
CONF
}
