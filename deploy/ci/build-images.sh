#!/usr/bin/env bash
# Builds local stand-ins for the images docker-compose.yml names, for a Docker engine that can
# pull nothing (CI here has no registry): a minimal Debian made with debootstrap and imported,
# a PostgreSQL image from Debian's package with the official image's entrypoint contract, a
# Prometheus image from Debian's package laid out as the official one (for the `observability`
# profile), and the leanstack image from binaries built on the host
# (deploy/ci/Dockerfile.prebuilt) instead of the Rust build stage of deploy/Dockerfile.
#
#   deploy/ci/build-images.sh [BINARY_DIR]     (default: target/debug)
#   deploy/ci/build-images.sh --dockerfile     (the leanstack image by deploy/Dockerfile itself,
#                                               on a stand-in Rust image: deploy/ci/rust-image.sh)
#
# Images that already exist are kept (delete them to rebuild); the leanstack image is rebuilt
# every time, since it carries the code under test.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin_dir=${1:-target/debug}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap ROOTFS [PACKAGES]: a minimal Debian bookworm in ROOTFS.
bootstrap() {
    local rootfs=$1 include=${2:-}
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$rootfs" "$mirror" \
        >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; return 1; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! have_image debian:bookworm-slim; then
    echo "building debian:bookworm-slim (debootstrap minbase)"
    bootstrap "$work/debian" ca-certificates
    tar -C "$work/debian" -c . | docker import - debian:bookworm-slim >/dev/null
fi

if ! have_image postgres:15-bookworm; then
    echo "building postgres:15-bookworm (Debian's postgresql package)"
    bootstrap "$work/postgres" postgresql-15,postgresql-client-15
    install -m 0755 deploy/ci/postgres-entrypoint.sh "$work/postgres/usr/local/bin/docker-entrypoint.sh"
    tar -C "$work/postgres" -c . | docker import \
        --change 'ENV PGDATA=/var/lib/postgresql/data' \
        --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'EXPOSE 5432' \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        - postgres:15-bookworm >/dev/null
fi

# The tag docker-compose.yml names by default, so the stand-in is used without an override.
prometheus_image=$(sed -n 's/.*PROMETHEUS_IMAGE:-\([^}]*\)}.*/\1/p' docker-compose.yml)
if ! have_image "$prometheus_image"; then
    echo "building $prometheus_image (Debian's prometheus package)"
    bootstrap "$work/prometheus" prometheus,wget
    rm -rf "$work"/prometheus/usr/share/{doc,man}
    # As the official image: runs as nobody, keeps its data in /prometheus, flags as command.
    install -d -o 65534 -g 65534 "$work/prometheus/prometheus"
    tar -C "$work/prometheus" -c . | docker import \
        --change 'USER nobody' \
        --change 'WORKDIR /prometheus' \
        --change 'EXPOSE 9090' \
        --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
        --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
        - "$prometheus_image" >/dev/null
fi

if [[ $bin_dir == --dockerfile ]]; then
    rust_image=$(sed -n 's/^ARG RUST_IMAGE=//p' deploy/Dockerfile)
    have_image "$rust_image" || deploy/ci/rust-image.sh
    echo "building leanstack:latest by deploy/Dockerfile"
    docker build -q -f deploy/Dockerfile -t leanstack:latest . >/dev/null
else
    echo "building leanstack:latest from the binaries in $bin_dir"
    mkdir -p "$work/context/bin"
    for binary in proxy app cache doorbell loadtest; do
        cp "$bin_dir/$binary" "$work/context/bin/"
    done
    docker build -q -f deploy/ci/Dockerfile.prebuilt -t leanstack:latest "$work/context" >/dev/null
fi
echo "images ready"
