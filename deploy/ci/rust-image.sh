#!/usr/bin/env bash
# Builds a local stand-in for the official Rust image that deploy/Dockerfile's build stage
# starts from (rust:1-bookworm), for a Docker engine that can pull nothing: a minimal Debian
# bookworm (debootstrap) with a C toolchain, plus the host's own Rust toolchain, laid out as the
# official image lays it out (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo).
# With it, `deploy/ci/build-images.sh --dockerfile` builds the leanstack image by the real
# Dockerfile (cargo-chef and all), as `docker compose up --build` does on a machine with a registry.
#
#   deploy/ci/rust-image.sh            (needs rustup's stable toolchain on the host)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=$(sed -n 's/^ARG RUST_IMAGE=//p' deploy/Dockerfile)
toolchain=$(rustc --print sysroot)
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building $tag (debootstrap + the host's $(rustc --version))"
debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev,pkg-config,git \
    bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work"/root/var/lib/apt/lists/* "$work"/root/var/cache/apt/archives/*.deb
# The host's own certificate authorities too: where outgoing TLS is intercepted by a proxy the
# host trusts (as on this CI machine kind), cargo in the build stage must trust it to reach crates.io.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/root/usr/local/share/ca-certificates/"
    chroot "$work/root" update-ca-certificates >/dev/null
fi
# The compiler, the standard library and cargo; not the documentation (share/).
install -d "$work/root/usr/local/rustup/toolchain" "$work/root/usr/local/cargo/bin"
cp -a "$toolchain"/{bin,lib,libexec,etc} "$work/root/usr/local/rustup/toolchain/"
for tool in "$work"/root/usr/local/rustup/toolchain/bin/*; do
    ln -s "../../rustup/toolchain/bin/$(basename "$tool")" "$work/root/usr/local/cargo/bin/"
done
tar -C "$work/root" -c . | docker import \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$tag" >/dev/null
echo "$tag ready: $(docker run --rm "$tag" cargo --version)"
