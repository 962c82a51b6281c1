#!/usr/bin/env bash
# Build the local base image for the four images when no registry serves python:3.11-slim.
#
#   bash images/base.sh [ENGINE]    prints the image reference on its last line
#
# The image is Debian bookworm (debootstrap --variant=minbase) plus python3.11 with venv
# support, /usr/local/bin/python -> python3.11 (the Dockerfiles call `python`, as the
# official python:3.11-slim provides) and the CA certificates. It is what the
# Dockerfiles' BASE build argument names in place of python:3.11-slim (docs/images.md).
#
# Cached outside the repository: the root filesystem tarball lives in
# ${FTI_CACHE_DIR:-~/.cache/fti-operator}/images/base-<recipe>.tar, where <recipe> is a
# hash of this script, so editing the recipe rebuilds it; an image already tagged with
# the recipe in the engine is reused as is.
set -euo pipefail
ENGINE="${1:-podman}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3.11 python3.11-venv ca-certificates tzdata"
HERE="$(cd "$(dirname "$0")" && pwd)"
RECIPE="$(sha256sum "$HERE/base.sh" | cut -c1-12)"
REF="localhost/fti-base:py311-$SUITE-$RECIPE"
CACHE="${FTI_CACHE_DIR:-$HOME/.cache/fti-operator}/images"
TAR="$CACHE/base-$RECIPE.tar"

if "$ENGINE" image exists "$REF" 2>/dev/null || "$ENGINE" image inspect "$REF" >/dev/null 2>&1; then
    echo "$REF"; exit 0
fi
if [[ ! -f "$TAR" ]]; then
    if [[ "$(id -u)" != 0 ]] || ! command -v debootstrap >/dev/null; then
        echo "base.sh: building the base needs root and debootstrap (apt-get install debootstrap)" >&2
        exit 2
    fi
    start=$(date +%s)
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    # debootstrap's --include configures packages before their dependencies are ready
    # (python3.11-venv fails so), so the packages come from apt inside the new root.
    log="$CACHE/debootstrap.log"
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$log" 2>&1 \
        || { tail -20 "$log" "$root/debootstrap/debootstrap.log" >&2 2>/dev/null; exit 1; }
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # shellcheck disable=SC2086 # PACKAGES is a list
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES \
        >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
    : >"$root/etc/resolv.conf"
    ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
    ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
    # What an image does not need: package lists, docs, man pages, caches, logs.
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
           "$root"/usr/share/info/* "$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/tmp/*
    tar --numeric-owner -C "$root" -cf "$TAR.tmp" .
    mv "$TAR.tmp" "$TAR"
    echo "base: debootstrap $SUITE + python3.11 in $(( $(date +%s) - start ))s ($(du -h "$TAR" | cut -f1))" >&2
fi
"$ENGINE" import --change 'CMD ["python3.11"]' --change 'ENV LANG=C.UTF-8' "$TAR" "$REF" >/dev/null
echo "$REF"
