#!/usr/bin/env bash
# Build the four images from the repository's Dockerfiles (`make images`).
#
#   bash images/build.sh [operator|feature|training|inference ...]   default: all four
#
# Engine: docker when a Docker engine answers, else podman (buildah-compatible), with
# FTI_IMAGE_ENGINE to force one. Base: FTI_IMAGE_BASE, else python:3.11-slim when a
# registry answers, else the local Debian base from images/base.sh. The Dockerfiles are
# the same in every case; only their BASE build argument differs (docs/images.md).
# Tags: ghcr.io/fti-dev/fti-<name>:${FTI_IMAGE_TAG:-dev}. Prints each step's time and
# each image's size, and removes the image a rebuild replaced (docs/images.md, "Layers").
set -euo pipefail
cd "$(dirname "$0")/.."
HERE="$PWD/images"
TAG="${FTI_IMAGE_TAG:-dev}"
PREFIX="${FTI_IMAGE_PREFIX:-ghcr.io/fti-dev}"
declare -A DOCKERFILE=(
    [operator]=operator/Dockerfile
    [feature]=pipeline_images/docker/feature.Dockerfile
    [training]=pipeline_images/docker/training.Dockerfile
    [inference]=pipeline_images/docker/inference.Dockerfile
)
NAMES=("$@")
[[ ${#NAMES[@]} -gt 0 ]] || NAMES=(operator feature training inference)

ENGINE="${FTI_IMAGE_ENGINE:-}"
if [[ -z "$ENGINE" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v podman >/dev/null; then ENGINE=podman
    else echo "images: need docker or podman (apt-get install podman)" >&2; exit 2; fi
fi
if [[ "$ENGINE" == podman && -z "${CONTAINERS_CONF:-}" ]]; then
    # runc + explicit ulimits (images/containers.conf), at this shell's hard limits:
    # podman's own defaults raise them, which needs CAP_SYS_RESOURCE. A caller's file wins.
    conf="${FTI_CACHE_DIR:-$HOME/.cache/fti-operator}/images/containers.conf"
    mkdir -p "$(dirname "$conf")"
    sed -e "s/@NOFILE@/$(ulimit -Hn)/g" "$HERE/containers.conf" >"$conf"
    export CONTAINERS_CONF="$conf"
fi

now() { date +%s; }
BASE="${FTI_IMAGE_BASE:-}"
if [[ -z "$BASE" ]]; then
    if curl -s -o /dev/null -m 5 https://registry-1.docker.io/v2/; then
        BASE=python:3.11-slim
    else
        start=$(now)
        BASE="$(bash "$HERE/base.sh" "$ENGINE" | tail -n1)"
        echo "images: no registry answers; local base $BASE ready in $(( $(now) - start ))s"
    fi
fi

ARGS=(--build-arg "BASE=$BASE")
# Outgoing TLS may be re-signed by a proxy whose CA only the host trusts: give pip the
# host's bundle (docker build cannot mount volumes; there the base's own CAs are used).
CA=/etc/ssl/certs/ca-certificates.crt
if [[ "$ENGINE" != docker && -f "$CA" ]]; then
    ARGS+=(-v "$CA:/etc/fti-host-ca.crt:ro" --build-arg PIP_CERT=/etc/fti-host-ca.crt)
fi

LOGS="${FTI_CACHE_DIR:-$HOME/.cache/fti-operator}/images/logs"
mkdir -p "$LOGS"
total=$(now)
for name in "${NAMES[@]}"; do
    file="${DOCKERFILE[$name]:?unknown image $name (operator, feature, training, inference)}"
    ref="$PREFIX/fti-$name:$TAG"
    start=$(now)
    log="$LOGS/$name.log"
    old="$("$ENGINE" image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
    if ! "$ENGINE" build "${ARGS[@]}" -f "$file" -t "$ref" . >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "images: building $ref failed (full log: $log)" >&2
        exit 1
    fi
    size="$("$ENGINE" image inspect --format '{{.Size}}' "$ref")"
    echo "images: built $ref in $(( $(now) - start ))s ($(( size / 1024 / 1024 )) MiB) from $file"
    # The image this build replaced (now untagged) goes, with the intermediate images only
    # it used; the layer cache the new build shares (the dependency venv) stays. An image
    # still tagged elsewhere is kept, as rmi without --force does.
    new="$("$ENGINE" image inspect --format '{{.Id}}' "$ref")"
    if [[ -n "$old" && "$old" != "$new" ]] && "$ENGINE" rmi "$old" >>"$log" 2>&1; then
        echo "images: removed the image it replaced (${old:0:12})"
    fi
done
echo "images: ${#NAMES[@]} image(s) built in $(( $(now) - total ))s with $ENGINE, base $BASE"
