#!/usr/bin/env bash
# build-deb-dir.sh - a directory of .deb files for `host.offline_packages`: every package
# `configure` installs (docker.io, Compose, unattended-upgrades, ufw) with the whole dependency
# closure (no Recommends), and the `Packages`/`Packages.gz` index apt reads from it. Run it on a
# machine that reaches a mirror of the TARGET's release (Debian 12 for Debian 12 hosts, Ubuntu
# 24.04 for Ubuntu 24.04 hosts): it uses this machine's apt sources.
#
# Usage:
#   sudo provisioning/offline/build-deb-dir.sh [--force] [DIR]
#
# DIR defaults to /var/cache/torrust-deployer/offline-debs/<codename>. An existing complete
# directory (its Packages.gz present) is kept unless --force. The directory is built beside DIR
# and renamed at the end, so a failed run leaves no half directory. DIR is the LAST LINE on
# stdout; progress goes to stderr. Needs root (apt-get update, dpkg-dev if missing).
set -euo pipefail

FORCE=0
DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1 ;;
        -h | --help) awk 'NR == 1 {next} /^#/ {sub(/^# ?/, ""); print; next} {exit}' "$0"; exit 0 ;;
        -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) DIR=$1 ;;
    esac
    shift
done

log() { printf '[build-deb-dir] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root: sudo $0"; exit 1; }

. /etc/os-release
case "${ID}:${VERSION_ID:-}" in
    debian:12) COMPOSE=docker-compose ;;
    ubuntu:24.04) COMPOSE=docker-compose-v2 ;;
    *) log "unsupported release ${ID} ${VERSION_ID:-}: run this on Debian 12 or Ubuntu 24.04 (the target's release)"; exit 1 ;;
esac
CODENAME=${VERSION_CODENAME:-unknown}
DIR=${DIR:-/var/cache/torrust-deployer/offline-debs/$CODENAME}
case "$DIR" in /*) ;; *) DIR=$(pwd)/$DIR ;; esac
PACKAGES=(docker.io "$COMPOSE" unattended-upgrades ufw)

if [ -f "$DIR/Packages.gz" ] && [ $FORCE -eq 0 ]; then
    log "kept: $DIR ($(find "$DIR" -name '*.deb' | wc -l) packages; --force rebuilds it)"
    echo "$DIR"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v dpkg-scanpackages >/dev/null 2>&1; then
    log "installing dpkg-dev (dpkg-scanpackages)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi
log "apt-get update"
apt-get update -qq

WORK="$DIR.partial.$$"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
# The closure of the packages' dependencies (Depends and Pre-Depends, recursively): everything
# a minimal host could lack. Virtual packages (<name>) are dropped; apt-get download takes
# each real package's candidate version.
mapfile -t CLOSURE < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${PACKAGES[@]}" | grep '^\w' | sort -u)
log "downloading ${#CLOSURE[@]} packages for ${PACKAGES[*]} ($PRETTY_NAME)"
(cd "$WORK" && apt-get download -q "${CLOSURE[@]}" >/dev/null 2>"$WORK/download.log") || {
    log "apt-get download failed:"; tail -n 20 "$WORK/download.log" >&2; exit 1; }
rm -f "$WORK/download.log"
(cd "$WORK" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null && gzip -9kf Packages)
for p in "${PACKAGES[@]}"; do
    grep -q "^Package: $p\$" "$WORK/Packages" || { log "the index lacks $p"; exit 1; }
done
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$WORK" "$DIR"
trap - EXIT
log "built: $DIR ($(find "$DIR" -name '*.deb' | wc -l) packages, $(du -sh "$DIR" | cut -f1))"
echo "$DIR"
