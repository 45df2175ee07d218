#!/usr/bin/env bash
# build-offline-bundle.sh - build the offline image bundle for the deployer's end-to-end tests:
# one `docker save` archive (gzip) per image the deployer's compose stack uses, tagged exactly
# as the deployer's defaults (src/config/images.rs), plus manifest.json. No image can be pulled on
# the test machines, so the images are built here: the REAL tracker (binaries from
# provisioning/tracker/build-tracker.sh) and stand-ins for mysql, prometheus, grafana and caddy
# (see provisioning/images/README.md).
#
# Usage:
#   sudo provisioning/images/build-offline-bundle.sh [options]
#
# Options:
#   --check          also (re)verify a cached bundle: load its archives into the builder, compare
#                    the image IDs with manifest.json and run the smoke checks (smoke-check.sh).
#                    Fresh builds always run the smoke checks before anything is saved.
#   --force          rebuild even if a bundle with the same key exists
#   --keep-builder   stop the builder container at the end instead of deleting it (a later
#                    build reuses it: Docker's layer cache and the base image make it faster)
#   -h, --help       this text
#
# Output: ${BUNDLE_CACHE:-/var/cache/torrust-deployer/bundle}/<key>/ with <service>.tar.gz and
# manifest.json; <key> hashes every input (this script, the files beside it, the tracker version
# and binaries, the Debian suite). `current` is a symlink to the newest bundle. The bundle path
# is the LAST LINE on stdout; progress goes to stderr. A second run with the same inputs returns
# at once. A failed or interrupted run leaves no bundle behind (it is built in a temporary
# directory and renamed at the end).
#
# Environment: BUNDLE_CACHE, TRACKER_VERSION (default 3.0.0), BUNDLE_BUILDER (builder container,
# default torrust-bundle-builder), DEBOOTSTRAP_CACHE (default /var/cache/torrust-deployer/debootstrap),
# MIRROR (default: the host's apt sources' bookworm mirror), TMPDIR (default /var/tmp).
set -euo pipefail

START_TS=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/../.." && pwd)

SUITE=bookworm
TRACKER_VERSION=${TRACKER_VERSION:-3.0.0}
TRACKER_CACHE=${TRACKER_CACHE:-/var/cache/torrust-deployer/tracker}
BUNDLE_CACHE=${BUNDLE_CACHE:-/var/cache/torrust-deployer/bundle}
BUILDER=${BUNDLE_BUILDER:-torrust-bundle-builder}
DEBOOTSTRAP_CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/torrust-deployer/debootstrap}
LXD_IMAGE=torrust/debian-12
BASE_TAG=torrust-bundle/debian-base:12
B=/root/torrust-bundle   # work dir inside the builder

# service | image reference | build context dir | kind
IMAGES=(
    "tracker|torrust/tracker:$TRACKER_VERSION|tracker|real"
    "mysql|mysql:8.4|mysql|stand-in"
    "prometheus|prom/prometheus:v3.11.2|prometheus|stand-in"
    "grafana|grafana/grafana:13.0.0|grafana|stub"
    "caddy|caddy:2.11.2|caddy|stand-in"
)

DO_CHECK=0
FORCE=0
KEEP_BUILDER=0

# Progress and errors go to fd 8, a copy of the original stderr: a trap that fires while a
# command's output is redirected to a log file must still reach the console.
exec 8>&2
log() { printf '[build-offline-bundle +%3ss] %s\n' "$(($(date +%s) - START_TS))" "$*" >&8; }
die() {
    printf '[build-offline-bundle +%3ss] ERROR: %s\n' "$(($(date +%s) - START_TS))" "$1" >&8
    [ $# -ge 2 ] && printf '    fix: %s\n' "$2" >&8
    exit 1
}
usage() { awk 'NR == 1 {next} /^#/ {sub(/^# ?/, ""); print; next} {exit}' "$SELF"; }
since() { echo $(($(date +%s) - $1)); }

while [ $# -gt 0 ]; do
    case "$1" in
        --check) DO_CHECK=1 ;;
        --force) FORCE=1 ;;
        --keep-builder) KEEP_BUILDER=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" "see --help" ;;
    esac
    shift
done

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and LXD need it)" "run: sudo $0"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (got $(uname -m))" "build on an amd64 machine"
case "$BUILDER" in torrust-bundle-*) ;; *) die "BUNDLE_BUILDER must start with torrust-bundle- (got $BUILDER)" "unset it" ;; esac
case "$BUNDLE_CACHE" in /*) ;; *) BUNDLE_CACHE=$(pwd)/$BUNDLE_CACHE ;; esac

# ---------------------------------------------------------------------------------------------
# one run at a time (the builder container and the cache are shared)
# ---------------------------------------------------------------------------------------------
mkdir -p "$BUNDLE_CACHE"
exec 9>"$BUNDLE_CACHE/.lock"
if ! flock -n 9; then
    log "another build-offline-bundle run holds $BUNDLE_CACHE/.lock; waiting for it"
    flock 9
fi
# leftovers of runs that were killed hard (SIGKILL, power loss): never a valid bundle
rm -rf "$BUNDLE_CACHE"/.partial-* "$BUNDLE_CACHE"/.old-* "$BUNDLE_CACHE"/.current.tmp

# ---------------------------------------------------------------------------------------------
# cleanup: temp dirs, debootstrap, the builder (deleted, or stopped with --keep-builder)
# ---------------------------------------------------------------------------------------------
WORK=""
PARTIAL=""
DBS_PID=""
BUILDER_USED=0
umount_under() {
    local dir=$1 m
    for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}
dispose_builder() {
    [ $BUILDER_USED -eq 1 ] || return 0
    BUILDER_USED=0
    local t0
    t0=$(date +%s)
    if [ $KEEP_BUILDER -eq 1 ]; then
        lxc stop "$BUILDER" --timeout 60 >/dev/null 2>&1 || lxc stop "$BUILDER" --force >/dev/null 2>&1 || true
        log "builder: stopped $BUILDER (kept: --keep-builder; delete with: lxc delete --force $BUILDER) in $(since "$t0") s"
    else
        lxc delete --force "$BUILDER" >/dev/null 2>&1 || log "builder: WARNING: could not delete $BUILDER (lxc delete --force $BUILDER)"
        log "builder: deleted $BUILDER in $(since "$t0") s (use --keep-builder to keep it for faster rebuilds)"
    fi
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$DBS_PID" ] && [ -d "/proc/$DBS_PID" ]; then
        log "cleanup: stopping debootstrap (process group $DBS_PID)"
        kill -TERM -- "-$DBS_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do [ -d "/proc/$DBS_PID" ] || break; sleep 0.1; done
        kill -KILL -- "-$DBS_PID" 2>/dev/null || true
        sleep 0.5
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        umount_under "$WORK"
        if awk -v d="$WORK" 'index($2, d "/") == 1 {f=1} END {exit !f}' /proc/mounts; then
            log "cleanup: WARNING: mounts remain under $WORK; not deleting it (umount them, then rm -rf $WORK)"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    [ -n "$PARTIAL" ] && rm -rf "$PARTIAL"
    dispose_builder
    [ $rc -ne 0 ] && log "failed (exit $rc); no bundle was written, temporary files removed"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. the tracker binaries (cached by build-tracker.sh; ~14 min when cold)
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
log "tracker: provisioning/tracker/build-tracker.sh $TRACKER_VERSION (returns at once when cached; ~14 min cold)"
TRACKER_CACHE=$TRACKER_CACHE "$REPO/provisioning/tracker/build-tracker.sh" "$TRACKER_VERSION" >&2 ||
    die "building the tracker $TRACKER_VERSION failed" "run provisioning/tracker/build-tracker.sh $TRACKER_VERSION and read its output"
TRACKER_BIN="$TRACKER_CACHE/$TRACKER_VERSION/bin"
for b in torrust-tracker http_health_check; do
    [ -x "$TRACKER_BIN/$b" ] || die "$TRACKER_BIN/$b is missing after build-tracker.sh" "rm -rf $TRACKER_CACHE/$TRACKER_VERSION and rerun"
done
log "tracker: binaries ready in $(since "$t0") s ($TRACKER_BIN)"

# ---------------------------------------------------------------------------------------------
# 2. the key: a hash of every input
# ---------------------------------------------------------------------------------------------
inputs() {
    printf 'suite %s\ntracker_version %s\nbase_tag %s\n' "$SUITE" "$TRACKER_VERSION" "$BASE_TAG"
    printf '%s\n' "${IMAGES[@]}"
    # this script and every file beside it (Dockerfiles, entrypoints, configs), docs excepted
    (cd "$HERE" && find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$TRACKER_BIN" && sha256sum torrust-tracker http_health_check)
}
KEY=$(inputs | sha256sum | cut -c1-16)
DEST="$BUNDLE_CACHE/$KEY"

set_current() {
    ln -sfn "$KEY" "$BUNDLE_CACHE/.current.tmp"
    mv -Tf "$BUNDLE_CACHE/.current.tmp" "$BUNDLE_CACHE/current"
}

if [ -f "$DEST/manifest.json" ] && [ $FORCE -eq 0 ] && [ $DO_CHECK -eq 0 ]; then
    set_current
    log "cache hit: bundle $KEY is already built ($(du -sh "$DEST" | cut -f1)); $BUNDLE_CACHE/current -> $KEY"
    printf '%s\n' "$DEST"
    exit 0
fi
VERIFY_ONLY=0
if [ -f "$DEST/manifest.json" ] && [ $FORCE -eq 0 ]; then
    VERIFY_ONLY=1
    log "cache hit: bundle $KEY exists; --check: verifying it"
else
    log "bundle $KEY: building (inputs changed or not built yet)"
fi

# ---------------------------------------------------------------------------------------------
# 3. LXD and the LXD image of the builder
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
log "lxd: provisioning/host/prepare-lxd-host.sh and provisioning/image/build-debian-image.sh (idempotent)"
"$REPO/provisioning/host/prepare-lxd-host.sh" >&2 || die "preparing the LXD host failed" "see the output above"
"$REPO/provisioning/image/build-debian-image.sh" >&2 || die "building the $LXD_IMAGE LXD image failed" "see the output above"
command -v lxc >/dev/null || die "the lxc client is missing" "apt-get install lxd-client (or lxd)"
log "lxd: ready in $(since "$t0") s"

# ---------------------------------------------------------------------------------------------
# 4. the builder container with Docker inside
# ---------------------------------------------------------------------------------------------
bx() { lxc exec "$BUILDER" --env DEBIAN_FRONTEND=noninteractive -- "$@" </dev/null; }
bx_in() { lxc exec "$BUILDER" --env DEBIAN_FRONTEND=noninteractive -- "$@"; }   # with our stdin
builder_state() { lxc list --format csv -c s "^${BUILDER}\$" 2>/dev/null | head -n1; }

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/torrust-bundle.XXXXXX")
t0=$(date +%s)
state=$(builder_state)
BUILDER_USED=1
case "$state" in
    "")
        log "builder: creating $BUILDER from $LXD_IMAGE (security.nesting=true)"
        lxc launch "$LXD_IMAGE" "$BUILDER" -c security.nesting=true >/dev/null ||
            die "lxc launch $LXD_IMAGE $BUILDER failed" "see /var/log/lxd/lxd.log; check free disk space"
        ;;
    RUNNING) log "builder: reusing running $BUILDER" ;;
    STOPPED)
        log "builder: starting the existing $BUILDER"
        lxc config set "$BUILDER" security.nesting true
        lxc start "$BUILDER" || die "lxc start $BUILDER failed" "lxc delete --force $BUILDER, then rerun"
        ;;
    *) die "builder $BUILDER is in state $state" "lxc delete --force $BUILDER, then rerun" ;;
esac
[ "$(lxc config get "$BUILDER" security.nesting)" = true ] ||
    die "$BUILDER lacks security.nesting=true (Docker cannot run in it)" "lxc delete --force $BUILDER, then rerun"
addr=""
for _ in $(seq 1 120); do
    addr=$(bx sh -c 'ip -4 route show default | grep -q . && [ -s /etc/resolv.conf ] && ip -4 -o addr show eth0 | awk "{print \$4}"' 2>/dev/null) && [ -n "$addr" ] && break
    addr=""
    sleep 0.5
done
[ -n "$addr" ] || die "builder $BUILDER has no network after 60 s" "lxc list $BUILDER; check lxdbr0 (prepare-lxd-host.sh --check)"
sysstate=$(timeout 120 lxc exec "$BUILDER" -- systemctl is-system-running --wait </dev/null 2>/dev/null || true)
log "builder: up in $(since "$t0") s (systemd: ${sysstate:-unknown}, eth0 $addr)"

t0=$(date +%s)
if ! bx sh -c 'command -v docker >/dev/null' 2>/dev/null; then
    log "builder: apt-get install docker.io (15-30 s)"
    ok=0
    for i in 1 2 3; do
        if bx sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends docker.io' >"$WORK/apt-builder.log" 2>&1; then ok=1; break; fi
        log "builder: apt attempt $i failed; retrying"
        sleep 3
    done
    [ $ok -eq 1 ] || { tail -n 20 "$WORK/apt-builder.log" >&2; die "installing docker.io in $BUILDER failed" "check that the builder reaches the Debian mirror (LXD NAT on lxdbr0)"; }
fi
if ! bx docker info >/dev/null 2>&1; then
    if bx sh -c 'command -v systemctl >/dev/null && [ -d /run/systemd/system ]'; then
        bx systemctl start docker.service >/dev/null 2>&1 || true
    fi
    if ! bx docker info >/dev/null 2>&1; then
        log "builder: systemd did not start dockerd; starting it by hand"
        bx sh -c 'setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &'
    fi
    ok=0
    for _ in $(seq 1 60); do bx docker info >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
    [ $ok -eq 1 ] || die "dockerd does not answer in $BUILDER" "lxc exec $BUILDER -- journalctl -u docker (or /var/log/dockerd.log)"
fi
DOCKER_VERSION=$(bx docker version --format '{{.Server.Version}}')
log "builder: docker $DOCKER_VERSION ready in $(since "$t0") s"
bx sh -c "rm -rf $B && mkdir -p $B/ctx $B/out"

run_smoke_checks() {
    local t0
    t0=$(date +%s)
    log "check: smoke-check.sh in the builder (runs each image, ~1 min)"
    bx_in sh -c "cat >$B/smoke-check.sh" <"$HERE/smoke-check.sh"
    if ! bx env TRACKER_IMAGE="torrust/tracker:$TRACKER_VERSION" bash "$B/smoke-check.sh" >&2; then
        die "smoke checks failed (output above)" "fix the image; rerun with --keep-builder to inspect the builder"
    fi
    log "check: all smoke checks passed in $(since "$t0") s"
}

# ---------------------------------------------------------------------------------------------
# --check of an existing bundle: load, compare IDs, smoke-check, done
# ---------------------------------------------------------------------------------------------
if [ $VERIFY_ONLY -eq 1 ]; then
    t0=$(date +%s)
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r svc ref _ _ <<<"$entry"
        file=$(jq -r --arg s "$svc" '.images[] | select(.service == $s) | .file' "$DEST/manifest.json")
        want=$(jq -r --arg s "$svc" '.images[] | select(.service == $s) | .id' "$DEST/manifest.json")
        [ -n "$file" ] && [ -f "$DEST/$file" ] || die "bundle $KEY lacks the $svc archive" "rebuild with --force"
        (cd "$DEST" && sha256sum -c --status <(jq -r --arg s "$svc" '.images[] | select(.service == $s) | "\(.sha256)  \(.file)"' manifest.json)) ||
            die "$DEST/$file does not match its sha256 in manifest.json" "rebuild with --force"
        bx_in docker load -q <"$DEST/$file" >/dev/null || die "docker load of $file failed" "rebuild with --force"
        got=$(bx docker image inspect -f '{{.Id}}' "$ref") || die "$file did not provide $ref" "rebuild with --force"
        [ "$got" = "$want" ] || die "$ref from $file has ID $got, manifest says $want" "rebuild with --force"
    done
    log "check: all archives load and carry the IDs of manifest.json ($(since "$t0") s)"
    run_smoke_checks
    set_current
    rm -rf "$WORK"
    WORK=""
    dispose_builder
    log "done: bundle $KEY verified in $(since "$START_TS") s; $BUNDLE_CACHE/current -> $KEY"
    printf '%s\n' "$DEST"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 5. the Debian base image: debootstrap minbase on the host, `docker import` in the builder
# ---------------------------------------------------------------------------------------------
# host apt sources -> mirror (the same rules as provisioning/image/build-debian-image.sh)
suite_uri_in() {
    awk -v suite="$SUITE" '
        function has_suite(list,   n, i, a) { n = split(list, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] == suite) return 1; return 0 }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { if (types ~ /(^|[ \t])deb([ \t]|$)/ && has_suite(suites) && uris != "" && !printed) { split(uris, u, /[ \t]+/); print u[1]; printed = 1 } types = suites = uris = ""; next }
            if ($0 ~ /^[ \t]*#/) next
            if (tolower($1) == "types:")  { types  = $0; sub(/^[^:]*:[ \t]*/, "", types) }
            if (tolower($1) == "suites:") { suites = $0; sub(/^[^:]*:[ \t]*/, "", suites) }
            if (tolower($1) == "uris:")   { uris   = $0; sub(/^[^:]*:[ \t]*/, "", uris) }
            if (tolower($1) == "enabled:" && tolower($2) == "no") { types = "" }
            next
        }
        {
            sub(/#.*/, "")
            if ($1 != "deb") next
            i = 2
            if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite && !printed) { print $i; printed = 1 }
        }
        END { if (FILENAME ~ /\.sources$/ && types ~ /(^|[ \t])deb([ \t]|$)/ && has_suite(suites) && uris != "" && !printed) { split(uris, u, /[ \t]+/); print u[1] } }
    ' "$1" 2>/dev/null | head -n 1
}
file_has_suite_family() {
    awk -v suite="$SUITE" '
        function fam(s) { return s == suite || index(s, suite "-") == 1 || s == suite "/updates" }
        FILENAME ~ /\.sources$/ { if (tolower($1) == "suites:") for (i = 2; i <= NF; i++) if (fam($i)) f = 1; next }
        { sub(/#.*/, ""); if ($1 != "deb" && $1 != "deb-src") next; i = 2
          if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if (fam($(i + 1))) f = 1 }
        END { exit !f }' "$1" 2>/dev/null
}
HOST_SOURCES=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && file_has_suite_family "$f" && HOST_SOURCES+=("$f")
done
MIRROR=${MIRROR:-}
if [ -z "$MIRROR" ]; then
    for f in "${HOST_SOURCES[@]}"; do
        MIRROR=$(suite_uri_in "$f")
        [ -n "$MIRROR" ] && break
    done
    [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
MIRROR=${MIRROR%/}

build_base_rootfs() {
    local rootfs="$WORK/rootfs" t0 f kr ok copied=0
    mkdir -p "$rootfs" "$DEBOOTSTRAP_CACHE"
    command -v debootstrap >/dev/null && [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || {
        log "base: apt-get install debootstrap debian-archive-keyring"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap debian-archive-keyring; } >"$WORK/apt.log" 2>&1 ||
            die "installing debootstrap failed (see $WORK/apt.log)" "apt-get install debootstrap"
    }
    t0=$(date +%s)
    log "base: debootstrap --variant=minbase $SUITE from $MIRROR (cache $DEBOOTSTRAP_CACHE; ~1 min)"
    setsid debootstrap --variant=minbase --cache-dir="$DEBOOTSTRAP_CACHE" "$SUITE" "$rootfs" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 </dev/null &
    DBS_PID=$!
    if ! wait "$DBS_PID"; then
        DBS_PID=""
        tail -n 25 "$WORK/debootstrap.log" >&2
        [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 25 "$rootfs/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log above)" "check that $MIRROR serves $SUITE (set MIRROR=...); a broken .deb in $DEBOOTSTRAP_CACHE can be removed"
    fi
    DBS_PID=""
    umount_under "$rootfs"
    log "base: debootstrap done in $(since "$t0") s"

    # container-image settings: no docs, no recommends, no service starts, no caches
    install -m 0644 "$HERE/base/dpkg-excludes" "$rootfs/etc/dpkg/dpkg.cfg.d/torrust-bundle-excludes"
    install -m 0644 "$HERE/base/apt.conf" "$rootfs/etc/apt/apt.conf.d/90torrust-bundle"
    install -m 0755 "$HERE/base/policy-rc.d" "$rootfs/usr/sbin/policy-rc.d"
    # apt: the host's bookworm sources (when their keyrings are in the rootfs) + validity settings
    for f in "${HOST_SOURCES[@]}"; do
        ok=1
        for kr in $(grep -hoiE '(signed-by[:=][ ]*)[^] ,]+' "$f" | sed -E 's/^[Ss]igned-[Bb]y[:=][ ]*//'); do
            case "$kr" in /*) [ -f "$rootfs$kr" ] || ok=0 ;; esac
        done
        if [ $ok -eq 1 ]; then
            if [ "$f" = /etc/apt/sources.list ]; then cp "$f" "$rootfs/etc/apt/sources.list"
            else cp "$f" "$rootfs/etc/apt/sources.list.d/"; fi
            copied=1
        fi
    done
    if [ $copied -eq 1 ]; then
        printf '%s\n' "${HOST_SOURCES[@]}" | grep -qx /etc/apt/sources.list || rm -f "$rootfs/etc/apt/sources.list"
    fi
    local conf=()
    for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do [ -f "$f" ] && conf+=("$f"); done
    if [ ${#conf[@]} -gt 0 ] && grep -hE '^[[:space:]]*Acquire::Check-(Valid-Until|Date)' "${conf[@]}" 2>/dev/null |
        sort -u >"$WORK/apt-validity" && [ -s "$WORK/apt-validity" ]; then
        cp "$WORK/apt-validity" "$rootfs/etc/apt/apt.conf.d/99torrust-host-validity"
    fi
    # what the excludes would have kept out, had they been there during debootstrap
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/* 2>/dev/null || true
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs/debootstrap"
    find "$rootfs/var/log" -type f -delete
    mkdir -p "$rootfs/var/lib/apt/lists/partial"
    # Docker manages these three; keep nothing of the host's in the image
    : >"$rootfs/etc/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
    printf 'localhost\n' >"$rootfs/etc/hostname"
    rm -f "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"
}

# The base rootfs is cached on the host ($BASE_CACHE) and the base image reused from a kept
# builder while nothing that shapes them changes: suite, mirror, base/*, the functions above.
BASE_HASH=$( {
    printf '%s %s %s\n' "$SUITE" "$MIRROR" "$BASE_TAG"
    (cd "$HERE" && sha256sum base/*)
    declare -f build_base_rootfs suite_uri_in file_has_suite_family
} | sha256sum | cut -c1-16)
BASE_CACHE="$BUNDLE_CACHE/base"
BASE_TAR="$BASE_CACHE/debian-base-$SUITE-$BASE_HASH.tar"

t0=$(date +%s)
have_base=$(bx docker image inspect -f '{{index .Config.Labels "org.torrust.bundle.base"}}' "$BASE_TAG" 2>/dev/null || true)
if [ "$have_base" = "$BASE_HASH" ]; then
    log "base: $BASE_TAG ($BASE_HASH) already in the builder; reusing it"
else
    if [ -s "$BASE_TAR" ]; then
        log "base: reusing the cached rootfs $BASE_TAR"
    else
        build_base_rootfs
        t0=$(date +%s)
        mkdir -p "$BASE_CACHE"
        rm -f "$BASE_CACHE"/debian-base-*.tar   # one cached rootfs is enough
        tar -C "$WORK/rootfs" --numeric-owner -cf "$WORK/base.tar" . || die "packing the base rootfs failed" "check free space in $WORK"
        mv -f "$WORK/base.tar" "$BASE_TAR"
        rm -rf --one-file-system "$WORK/rootfs"
        log "base: rootfs packed in $(since "$t0") s ($(numfmt --to=iec "$(stat -c %s "$BASE_TAR")"), cached as $BASE_TAR)"
    fi
    t0=$(date +%s)
    log "base: docker import -> $BASE_TAG"
    bx_in docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.torrust.bundle.base=$BASE_HASH" \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase (debootstrap) for the torrust-tracker-deployer offline bundle\"" \
        - "$BASE_TAG" <"$BASE_TAR" >/dev/null || die "docker import of the base rootfs failed" "see the messages above"
    log "base: imported in $(since "$t0") s"
fi

# ---------------------------------------------------------------------------------------------
# 6. docker build each image FROM the base
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/ctx" "$WORK/logs"
for entry in "${IMAGES[@]}"; do
    IFS='|' read -r svc ref dir kind <<<"$entry"
    t0=$(date +%s)
    ctx="$WORK/ctx/$dir"
    cp -a "$HERE/$dir" "$ctx"
    if [ "$svc" = tracker ]; then
        mkdir -p "$ctx/bin"
        cp "$TRACKER_BIN/torrust-tracker" "$TRACKER_BIN/http_health_check" "$ctx/bin/"
    fi
    tar -C "$ctx" -cf - . | bx_in sh -c "rm -rf $B/ctx/$dir && mkdir -p $B/ctx/$dir && tar -C $B/ctx/$dir -xf -" ||
        die "copying the $svc build context into $BUILDER failed"
    log "build: $ref ($kind) from provisioning/images/$dir"
    # (one exec per image: under load, every `lxc exec` can wait on the LXD daemon)
    if ! bx bash -c 'set -e; ref=$1 dir=$2; shift 2; DOCKER_BUILDKIT=0 docker build --force-rm "$@" -t "$ref" "$dir"
            echo "IMAGE_SIZE=$(docker image inspect -f "{{.Size}}" "$ref")"' _ "$ref" "$B/ctx/$dir" \
        --build-arg "BASE=$BASE_TAG" \
        --label "org.torrust.bundle.key=$KEY" \
        --label "org.torrust.bundle.kind=$kind" >"$WORK/logs/$svc.log" 2>&1; then
        tail -n 30 "$WORK/logs/$svc.log" >&2
        die "docker build of $ref failed (last lines above)" "fix provisioning/images/$dir; rerun with --keep-builder to inspect"
    fi
    size=$(sed -n 's/^IMAGE_SIZE=//p' "$WORK/logs/$svc.log" | tail -n 1)
    log "build: $ref done in $(since "$t0") s ($(numfmt --to=si --suffix=B "${size:-0}"))"
done

# ---------------------------------------------------------------------------------------------
# 7. smoke checks (before anything is saved: a failing image never reaches a bundle)
# ---------------------------------------------------------------------------------------------
run_smoke_checks

# ---------------------------------------------------------------------------------------------
# 8. docker save | gzip in the builder, lxc file pull to the host, manifest.json
# ---------------------------------------------------------------------------------------------
PARTIAL=$(mktemp -d "$BUNDLE_CACHE/.partial-$KEY.XXXXXX")
# All saves in one exec (under load, every `lxc exec` can wait on the LXD daemon); it prints
# "<service> <image ID> <seconds>" per archive, which becomes a progress line here.
save_args=()
for entry in "${IMAGES[@]}"; do
    IFS='|' read -r svc ref _ _ <<<"$entry"
    save_args+=("$svc" "$ref")
done
declare -A IDS=()
t0=$(date +%s)
log "save: docker save | gzip -1 of ${#IMAGES[@]} images in the builder"
save_failed=0
while read -r svc id secs; do
    if [ "$svc" = FAILED ]; then save_failed=1; continue; fi
    IDS[$svc]=$id
    log "save: $svc.tar.gz in $secs s"
done < <(bx bash -c 'set -euo pipefail; out=$1; shift; cd "$out"
    while [ $# -gt 0 ]; do
        t=$SECONDS
        docker save "$2" | gzip -n -1 >"$1.tar.gz"
        echo "$1 $(docker image inspect -f "{{.Id}}" "$2") $((SECONDS - t))"
        shift 2
    done' _ "$B/out" "${save_args[@]}" || echo "FAILED")
[ $save_failed -eq 0 ] && [ ${#IDS[@]} -eq ${#IMAGES[@]} ] ||
    die "docker save in the builder failed" "check free disk space in $BUILDER (rerun with --keep-builder to inspect)"
t0=$(date +%s)
lxc file pull -r "$BUILDER$B/out" "$PARTIAL/" >/dev/null || die "lxc file pull -r $B/out failed" "check free space in $BUNDLE_CACHE"
mv "$PARTIAL"/out/*.tar.gz "$PARTIAL/" && rmdir "$PARTIAL/out"
bx rm -rf "$B/out" || true
log "save: pulled to the host in $(since "$t0") s"
records=()
for entry in "${IMAGES[@]}"; do
    IFS='|' read -r svc ref _ kind <<<"$entry"
    file="$svc.tar.gz"
    [ -s "$PARTIAL/$file" ] || die "$file is missing after the pull" "rerun"
    size=$(stat -c %s "$PARTIAL/$file")
    sum=$(sha256sum "$PARTIAL/$file" | cut -d' ' -f1)
    records+=("$(jq -cn --arg service "$svc" --arg image "$ref" --arg id "${IDS[$svc]}" --arg file "$file" \
        --arg kind "$kind" --arg sha256 "$sum" --argjson bytes "$size" \
        '{service: $service, image: $image, id: $id, file: $file, bytes: $bytes, sha256: $sha256, kind: $kind}')")
    log "save: $file $(numfmt --to=iec "$size") ${IDS[$svc]}"
done
printf '%s\n' "${records[@]}" | jq -s \
    --arg key "$KEY" --arg created "$(date -u +%FT%TZ)" --arg suite "$SUITE" --arg mirror "$MIRROR" \
    --arg tracker "$TRACKER_VERSION" --arg docker "$DOCKER_VERSION" \
    '{format: 1, key: $key, created: $created, debian_suite: $suite, debian_mirror: $mirror,
      tracker_version: $tracker, built_with_docker: $docker,
      load: "docker load -i FILE (or: gunzip -c FILE | docker load)",
      images: .}' >"$PARTIAL/manifest.json"

# ---------------------------------------------------------------------------------------------
# 9. publish: rename into place, move `current`, drop older bundles (keep the previous one)
# ---------------------------------------------------------------------------------------------
chmod 0755 "$PARTIAL"
prev=$(readlink "$BUNDLE_CACHE/current" 2>/dev/null || true)
if [ -e "$DEST" ]; then mv -T "$DEST" "$BUNDLE_CACHE/.old-$KEY"; fi
mv -T "$PARTIAL" "$DEST"
PARTIAL=""
rm -rf "$BUNDLE_CACHE/.old-$KEY"
set_current
for d in "$BUNDLE_CACHE"/*/; do
    d=${d%/}
    name=$(basename "$d")
    [[ $name =~ ^[0-9a-f]{16}$ ]] || continue
    [ "$name" = "$KEY" ] || [ "$name" = "$prev" ] && continue
    rm -rf "$d" && log "prune: removed the older bundle $name"
done
rm -rf "$WORK"
WORK=""
dispose_builder
log "done: bundle $KEY ($(du -sh "$DEST" | cut -f1)) in $(since "$START_TS") s; $BUNDLE_CACHE/current -> $KEY"
printf '%s\n' "$DEST"
