#!/usr/bin/env bash
# Builds local stand-ins for the base images docker-compose.yml and the Dockerfile name, from
# Debian 13 (trixie) packages, because no container registry is reachable from these machines.
#
#   tests/compose/base-images.sh            # rootfs (cached) -> import -> stand-ins, tagged
#   tests/compose/base-images.sh rootfs     # only debootstrap the rootfs tarball
#   tests/compose/base-images.sh --rebuild  # ignore the cached rootfs and images
#
# The stand-ins are tagged under the exact names the compose file and the Dockerfile use (read
# from them at each run), and also as chainsights-standin/<name>:trixie. They honour the
# official images' documented contracts the stack relies on (see tests/compose/README.md), not
# the official images themselves. Builds run with --network host: containers on the default
# bridge have no way out here, the host reaches the Debian mirror apt uses.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE_DIR=${COMPOSE_STATE_DIR:-/var/cache/chainsights-compose}
SUITE=${STANDIN_SUITE:-trixie}
ROOTFS_TAR="$CACHE_DIR/debian-$SUITE-minbase.tar"
BASE_TAG="chainsights-standin/debian:$SUITE"
DOCKER=${DOCKER:-/usr/bin/docker}
REBUILD=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

apt_mirror() {
    # The Debian mirror apt already uses on this host (deb822 or one-line sources).
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
        | grep -v security | head -n1 || true)
    [[ -n "$uri" ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | awk '{print $2}' | grep '/debian/\?$' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_rootfs() {
    if [[ -s "$ROOTFS_TAR" && $REBUILD -eq 0 ]]; then
        log "rootfs: cached $ROOTFS_TAR"
        return 0
    fi
    if ! command -v debootstrap >/dev/null; then
        # A cold cache on a Debian machine (CI): Debian's debootstrap, as root.
        [[ $EUID -eq 0 ]] || { echo "apt-get install debootstrap first" >&2; exit 1; }
        log "rootfs: installing Debian's debootstrap"
        apt-get install -y -q debootstrap >"$CACHE_DIR/logs/apt-debootstrap.log" 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q debootstrap \
                >>"$CACHE_DIR/logs/apt-debootstrap.log" 2>&1; } \
            || { tail -n 20 "$CACHE_DIR/logs/apt-debootstrap.log" >&2; exit 1; }
    fi
    local mirror target started
    mirror=$(apt_mirror)
    target="$CACHE_DIR/rootfs-$SUITE.tmp"
    rm -rf "$target"
    mkdir -p "$target"
    started=$SECONDS
    log "rootfs: debootstrap --variant=minbase $SUITE from $mirror"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$target" "$mirror" \
        >"$CACHE_DIR/logs/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/logs/debootstrap.log" >&2; exit 1; }
    # Security updates and a lean apt, like the official Debian images.
    cat >"$target/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    rm -f "$target/etc/apt/sources.list"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$target/etc/apt/apt.conf.d/90standin"
    # Package scripts must not try to start services inside an image build.
    printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
    chmod 755 "$target/usr/sbin/policy-rc.d"
    rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/*
    tar -C "$target" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$target"
    log "rootfs: $(du -h "$ROOTFS_TAR" | cut -f1) in $((SECONDS - started))s"
}

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

import_base() {
    if image_exists "$BASE_TAG" && [[ $REBUILD -eq 0 ]]; then
        log "import: $BASE_TAG present"
        return 0
    fi
    local started=$SECONDS
    "$DOCKER" import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
        "$ROOTFS_TAR" "$BASE_TAG" >/dev/null
    log "import: $BASE_TAG in $((SECONDS - started))s"
}

compose_images() {
    # Every image: line of docker-compose.yml plus the Dockerfile's FROM lines (not stage names).
    {
        grep -E '^\s+image:' "$REPO/docker-compose.yml" | awk '{print $2}' | tr -d '"'"'"
        grep -iE '^FROM ' "$REPO/Dockerfile" | awk '{print $2}'
    } | sort -u
}

standin_for() {
    # Which stand-in serves an upstream image name; nothing for the project's own image.
    case "$1" in
        postgres:*) echo postgres ;;
        rabbitmq:*-management | rabbitmq:*) echo rabbitmq ;;
        python:*) echo python ;;
        *) echo "" ;;
    esac
}

build_standin() {
    local kind=$1 tag="chainsights-standin/$1:$SUITE" started=$SECONDS
    if image_exists "$tag" && [[ $REBUILD -eq 0 ]]; then
        log "build: $tag present"
        return 0
    fi
    local context="$HERE/standins/$kind"
    if [[ $kind == python ]]; then
        # The egress proxy's CA, so pip inside a host-network build trusts it like the host.
        mkdir -p "$context/host-ca"
        cp /usr/local/share/ca-certificates/*.crt "$context/host-ca/" 2>/dev/null || true
    fi
    log "build: $tag"
    "$DOCKER" build --network host --build-arg "BASE=$BASE_TAG" -t "$tag" "$context" \
        >"$CACHE_DIR/logs/build-$kind.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/logs/build-$kind.log" >&2; exit 1; }
    log "build: $tag in $((SECONDS - started))s"
}

tag_standins() {
    local name kind
    for name in $(compose_images); do
        kind=$(standin_for "$name")
        [[ -n "$kind" ]] || continue
        build_standin "$kind"
        "$DOCKER" tag "chainsights-standin/$kind:$SUITE" "$name"
        log "tag: $name -> chainsights-standin/$kind:$SUITE ($("$DOCKER" image inspect \
            --format '{{index .Config.Labels "org.chainsights.standin.version"}}' "$name"))"
    done
}

main() {
    local stage=all
    for arg in "$@"; do
        case "$arg" in
            --rebuild) REBUILD=1 ;;
            rootfs | all) stage=$arg ;;
            *) echo "usage: $0 [rootfs|all] [--rebuild]" >&2; exit 2 ;;
        esac
    done
    mkdir -p "$CACHE_DIR/logs"
    build_rootfs
    [[ $stage == rootfs ]] && return 0
    import_base
    tag_standins
}

main "$@"
