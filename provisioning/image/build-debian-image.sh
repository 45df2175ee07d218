#!/usr/bin/env bash
# build-debian-image.sh - build a Debian 12 (bookworm) LXD container image offline with
# debootstrap and import it into LXD through its REST API (curl over the unix socket).
#
# Usage:
#   sudo provisioning/image/build-debian-image.sh [options]
#
# Options:
#   --alias NAME        image alias (default torrust/debian-12, or torrust/debian-12-nocloud
#                       with --no-cloud-init)
#   --no-cloud-init     build a variant WITHOUT cloud-init (openssh-server, sudo, networkd DHCP on
#                       eth0 and first-boot host keys only; push authorized_keys via the LXD API)
#   --out DIR           where the metadata tarball and the rootfs tar go
#                       (default /var/cache/torrust-deployer/images)
#   --cache-dir DIR     debootstrap .deb cache, reused across runs
#                       (default /var/cache/torrust-deployer/debootstrap)
#   --mirror URL        Debian mirror (default: the one the host's apt sources name for bookworm,
#                       else http://deb.debian.org/debian)
#   --force             rebuild (and re-import, moving the alias) even if the alias exists
#   --no-import         only build the tarballs, do not talk to LXD
#   -h, --help          this text
#
# Environment: LXD_SOCKET (default /var/lib/lxd/unix.socket, or the snap socket if only that
# exists), TMPDIR (build dir parent, default /var/tmp).
#
# Idempotent: with the alias already present (and no --force) it says so and exits 0; tarballs
# already in --out are reused unless --force. The alias is only created after a successful
# import, and an image this run imported is deleted again if the alias step fails.
set -euo pipefail

START_TS=$(date +%s)
SUITE=bookworm
ALIAS=""
CLOUD_INIT=1
OUT_DIR=/var/cache/torrust-deployer/images
CACHE_DIR=/var/cache/torrust-deployer/debootstrap
MIRROR=""
FORCE=0
DO_IMPORT=1

log() { printf '[build-debian-image +%3ss] %s\n' "$(($(date +%s) - START_TS))" "$*"; }
die() {
    printf '[build-debian-image +%3ss] ERROR: %s\n' "$(($(date +%s) - START_TS))" "$1" >&2
    [ $# -ge 2 ] && printf '    fix: %s\n' "$2" >&2
    exit 1
}
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }

need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value" "see --help"; fi; }
while [ $# -gt 0 ]; do
    case "$1" in
        --alias) need_arg "$@"; ALIAS=$2; shift ;;
        --no-cloud-init) CLOUD_INIT=0 ;;
        --out) need_arg "$@"; OUT_DIR=$2; shift ;;
        --cache-dir) need_arg "$@"; CACHE_DIR=$2; shift ;;
        --mirror) need_arg "$@"; MIRROR=$2; shift ;;
        --force) FORCE=1 ;;
        --no-import) DO_IMPORT=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" "see --help" ;;
    esac
    shift
done

if [ -z "$ALIAS" ]; then
    if [ $CLOUD_INIT -eq 1 ]; then ALIAS=torrust/debian-12; else ALIAS=torrust/debian-12-nocloud; fi
fi
VARIANT=$([ $CLOUD_INIT -eq 1 ] && echo cloud || echo nocloud)
SLUG=$(printf '%s' "$ALIAS" | tr -c 'A-Za-z0-9._-' '_')

if [ -n "${LXD_SOCKET:-}" ]; then
    SOCKET=$LXD_SOCKET
elif [ ! -S /var/lib/lxd/unix.socket ] && [ -S /var/snap/lxd/common/lxd/unix.socket ]; then
    SOCKET=/var/snap/lxd/common/lxd/unix.socket
else
    SOCKET=/var/lib/lxd/unix.socket
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it)" "run: sudo $0 $*"
[ "$(uname -m)" = "x86_64" ] || die "only x86_64 hosts are supported (got $(uname -m))" "build on an amd64 machine"
case "$OUT_DIR" in /*) ;; *) OUT_DIR=$(pwd)/$OUT_DIR ;; esac
case "$CACHE_DIR" in /*) ;; *) CACHE_DIR=$(pwd)/$CACHE_DIR ;; esac

META_TAR="$OUT_DIR/$SLUG.metadata.tar.gz"
ROOTFS_TAR="$OUT_DIR/$SLUG.rootfs.tar"

# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------
pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
missing=()
for p in debootstrap curl jq; do pkg_installed "$p" || missing+=("$p"); done
if [ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then missing+=(debian-archive-keyring); fi
if [ ${#missing[@]} -gt 0 ]; then
    log "tools: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >/tmp/build-debian-image.apt.log 2>&1 ||
        die "apt-get install ${missing[*]} failed (see /tmp/build-debian-image.apt.log)" "install them by hand"
fi

# ---------------------------------------------------------------------------------------------
# LXD helpers (curl over the unix socket, JSON with jq)
# ---------------------------------------------------------------------------------------------
# lxd_call METHOD PATH [curl args...]: prints the body; fails on transport errors only.
lxd_call() {
    local method=$1 path=$2
    shift 2
    curl -sS --unix-socket "$SOCKET" -X "$method" "$@" "http://lxd$path"
}
lxd_ok() { jq -e '.type != "error" and (.error_code // 0) == 0' >/dev/null 2>&1 <<<"$1"; }
lxd_err() { jq -r '.error // "unknown error"' 2>/dev/null <<<"$1" || printf '%s' "$1"; }
lxd_urlenc() { jq -rn --arg s "$1" '$s|@uri'; }

# lxd_wait RESPONSE WHAT: wait for the async operation of RESPONSE; prints the finished operation.
lxd_wait() {
    local resp=$1 what=$2 op fin
    op=$(jq -r '.operation // empty' <<<"$resp")
    [ -n "$op" ] || die "$what: LXD returned no operation: $(lxd_err "$resp")" "see /var/log/lxd/lxd.log"
    fin=$(lxd_call GET "$op/wait?timeout=600") || die "$what: waiting for $op failed" "is LXD still running?"
    if ! jq -e '.metadata.status_code == 200' >/dev/null 2>&1 <<<"$fin"; then
        die "$what failed: $(jq -r '.metadata.err // .error // "unknown"' <<<"$fin")" "see /var/log/lxd/lxd.log"
    fi
    printf '%s' "$fin"
}

alias_target() { # prints the fingerprint ALIAS points at, or nothing
    local r
    r=$(lxd_call GET "/1.0/images/aliases/$(lxd_urlenc "$ALIAS")") || return 0
    jq -r 'select(.type == "sync") | .metadata.target // empty' <<<"$r"
}

if [ $DO_IMPORT -eq 1 ]; then
    curl -s --max-time 5 --unix-socket "$SOCKET" http://lxd/1.0 2>/dev/null | grep -q '"status_code":200' ||
        die "LXD does not answer on $SOCKET" "run provisioning/host/prepare-lxd-host.sh first (or set LXD_SOCKET), or use --no-import"
    OLD_FP=$(alias_target)
    if [ -n "$OLD_FP" ] && [ $FORCE -eq 0 ]; then
        log "alias $ALIAS already exists (fingerprint $OLD_FP) - nothing to do (use --force to rebuild)"
        exit 0
    fi
else
    OLD_FP=""
fi

# ---------------------------------------------------------------------------------------------
# build dir + cleanup
# ---------------------------------------------------------------------------------------------
WORK=""
IMPORTED_FP=""   # set when this run created an image ...
ALIAS_DONE=0     # ... and cleared (ALIAS_DONE=1) once the alias points at it
umount_under() {
    local dir=$1 m
    # deepest first
    for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}
DBS_PID=""       # debootstrap's PID (= its process group) while it runs
cleanup() {
    local rc=$?
    if [ -n "$DBS_PID" ] && [ -d "/proc/$DBS_PID" ]; then
        log "cleanup: stopping debootstrap (process group $DBS_PID)"
        kill -TERM -- "-$DBS_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do [ -d "/proc/$DBS_PID" ] || break; sleep 0.1; done
        kill -KILL -- "-$DBS_PID" 2>/dev/null || true
        sleep 0.5
    fi
    if [ -n "$IMPORTED_FP" ] && [ $ALIAS_DONE -eq 0 ]; then
        log "cleanup: deleting image $IMPORTED_FP imported by this run (alias not set)"
        lxd_call DELETE "/1.0/images/$IMPORTED_FP" >/dev/null 2>&1 || true
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        umount_under "$WORK"
        if awk -v d="$WORK" 'index($2, d "/") == 1 {f=1} END {exit !f}' /proc/mounts; then
            log "cleanup: WARNING: mounts remain under $WORK; not deleting it (umount them, then rm -rf $WORK)"
        else
            [ $rc -ne 0 ] && log "cleanup: removing build dir $WORK"
            rm -rf --one-file-system "$WORK"
        fi
    fi
    rm -f "$META_TAR.partial" "$ROOTFS_TAR.partial"
    [ $rc -ne 0 ] && log "failed (exit $rc); temporary files removed, no alias changed"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# host apt sources -> mirror
# ---------------------------------------------------------------------------------------------
# Prints the first URI of a `deb` entry for suite SUITE in a one-line or deb822 sources file.
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

# Does the file carry any entry for SUITE or SUITE-* (updates, security, backports)?
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
if [ -z "$MIRROR" ]; then
    for f in "${HOST_SOURCES[@]}"; do
        MIRROR=$(suite_uri_in "$f")
        [ -n "$MIRROR" ] && break
    done
    if [ -z "$MIRROR" ]; then
        MIRROR=http://deb.debian.org/debian
        log "mirror: the host's apt sources name no $SUITE mirror; using $MIRROR (override with --mirror)"
    fi
fi
MIRROR=${MIRROR%/}
log "building $ALIAS ($VARIANT variant, Debian $SUITE) from $MIRROR"

# ---------------------------------------------------------------------------------------------
# 1. tarballs (reuse unless --force)
# ---------------------------------------------------------------------------------------------
build_tarballs() {
    mkdir -p "$OUT_DIR" "$CACHE_DIR"
    WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/torrust-image.XXXXXX")
    local rootfs="$WORK/rootfs" meta="$WORK/meta" include t0
    mkdir -p "$rootfs" "$meta/templates"

    include=systemd-sysv,systemd-resolved,udev,dbus,openssh-server,sudo,ca-certificates,curl,iproute2,gnupg,netbase,iputils-ping,less
    [ $CLOUD_INIT -eq 1 ] && include+=,python3-cffi-backend,cloud-init

    t0=$(date +%s)
    log "debootstrap: $SUITE minbase into $rootfs (cache $CACHE_DIR; 1-4 min, mostly unpacking)"
    # In its own process group (setsid), in the background + wait: a signal to this script then
    # runs the cleanup at once, and the cleanup can stop debootstrap and its dpkg children.
    setsid debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE_DIR" \
        "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 </dev/null &
    DBS_PID=$!
    if ! wait "$DBS_PID"; then
        DBS_PID=""
        tail -n 25 "$WORK/debootstrap.log" >&2
        [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 25 "$rootfs/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log above)" "check that $MIRROR is reachable and serves $SUITE (override with --mirror URL); a broken .deb in $CACHE_DIR can be removed"
    fi
    DBS_PID=""
    umount_under "$rootfs"
    log "debootstrap: done in $(($(date +%s) - t0)) s"

    log "configure: networkd DHCP on eth0, locale, masked units, host keys, machine-id, apt sources"
    # networking: systemd-networkd DHCP on eth0 (udev is in the image: without it eth0 is never configured)
    mkdir -p "$rootfs/etc/systemd/network"
    cat >"$rootfs/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
UseDomains=true
EOF
    chroot "$rootfs" systemctl enable systemd-networkd.service systemd-resolved.service ssh.service >>"$WORK/configure.log" 2>&1 ||
        die "systemctl enable in the chroot failed (see $WORK/configure.log)" "rerun; if it persists, inspect the rootfs"
    ln -sf ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
    # fails in unprivileged containers
    ln -sf /dev/null "$rootfs/etc/systemd/system/systemd-binfmt.service"
    ln -sf /dev/null "$rootfs/etc/systemd/system/proc-sys-fs-binfmt_misc.automount"

    # locale (cloud-init's locale module fails without it)
    printf 'LANG=C.UTF-8\n' >"$rootfs/etc/default/locale"

    # SSH host keys: none in the image; generated at first boot (before sshd)
    rm -f "$rootfs"/etc/ssh/ssh_host_*
    cat >"$rootfs/etc/systemd/system/torrust-ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys at first boot
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
After=cloud-init.service
Before=ssh.service sshd.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
    chroot "$rootfs" systemctl enable torrust-ssh-hostkeys.service >>"$WORK/configure.log" 2>&1 ||
        die "enabling torrust-ssh-hostkeys.service failed (see $WORK/configure.log)" "inspect the rootfs"

    # machine-id: empty, so every container gets its own
    : >"$rootfs/etc/machine-id"
    rm -f "$rootfs/var/lib/dbus/machine-id"
    ln -sf /etc/machine-id "$rootfs/var/lib/dbus/machine-id"
    printf 'localhost\n' >"$rootfs/etc/hostname"

    # apt: the host's bookworm sources (with keyrings present in the image) + its validity settings
    local copied=0 f kr ok
    for f in "${HOST_SOURCES[@]}"; do
        ok=1
        for kr in $(grep -hoiE '(signed-by[:=][ ]*)[^] ,]+' "$f" | sed -E 's/^[Ss]igned-[Bb]y[:=][ ]*//'); do
            case "$kr" in /*) [ -f "$rootfs$kr" ] || ok=0 ;; esac
        done
        if [ $ok -eq 1 ]; then
            if [ "$f" = /etc/apt/sources.list ]; then cp "$f" "$rootfs/etc/apt/sources.list"
            else cp "$f" "$rootfs/etc/apt/sources.list.d/"; fi
            copied=1
        else
            log "configure: skipping host apt source $f (its keyring is not in the image)"
        fi
    done
    if [ $copied -eq 1 ]; then
        # drop debootstrap's one-line sources.list unless the host's own was copied over it
        printf '%s\n' "${HOST_SOURCES[@]}" | grep -qx /etc/apt/sources.list || rm -f "$rootfs/etc/apt/sources.list"
    else
        cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    fi
    # (grep exits 2 when any named file is missing, even with matches: pass existing files only)
    local conf=()
    for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do [ -f "$f" ] && conf+=("$f"); done
    if [ ${#conf[@]} -gt 0 ] &&
        grep -hE '^[[:space:]]*Acquire::Check-(Valid-Until|Date)' "${conf[@]}" >"$WORK/apt-validity" 2>/dev/null; then
        sort -u "$WORK/apt-validity" >"$rootfs/etc/apt/apt.conf.d/99torrust-host-validity"
        log "configure: copied the host's $(tr '\n' ' ' <"$WORK/apt-validity")into the image"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
        "$rootfs/debootstrap"
    mkdir -p "$rootfs/var/lib/apt/lists/partial"

    # cloud-init: NoCloud seed written by LXD templates; network left to networkd
    if [ $CLOUD_INIT -eq 1 ]; then
        cat >"$rootfs/etc/cloud/cloud.cfg.d/90-torrust.cfg" <<'EOF'
# torrust-tracker-deployer image: NoCloud seed (written by LXD templates), networking by networkd
datasource_list: [ NoCloud, None ]
network:
  config: disabled
locale: C.UTF-8
ssh_genkeytypes: [ rsa, ecdsa, ed25519 ]
apt:
  preserve_sources_list: true
EOF
        rm -rf "$rootfs/var/lib/cloud"/* 2>/dev/null || true
        mkdir -p "$rootfs/var/lib/cloud/seed/nocloud-net"
    fi

    # LXD metadata
    local now serial
    now=$(date +%s)
    serial=$(date -u +%Y%m%d_%H%M)
    cat >"$meta/metadata.yaml" <<EOF
architecture: x86_64
creation_date: $now
properties:
  architecture: amd64
  description: Debian 12 ($SUITE) amd64 $VARIANT (torrust-tracker-deployer, debootstrap $serial)
  os: debian
  release: $SUITE
  variant: $VARIANT
  serial: "$serial"
templates:
  /etc/hostname:
    when: [create, copy]
    create_only: false
    template: hostname.tpl
    properties: {}
  /etc/hosts:
    when: [create, copy]
    create_only: false
    template: hosts.tpl
    properties: {}
EOF
    printf '{{ container.name }}\n' >"$meta/templates/hostname.tpl"
    cat >"$meta/templates/hosts.tpl" <<'EOF'
127.0.0.1	localhost
127.0.1.1	{{ container.name }}

::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
    if [ $CLOUD_INIT -eq 1 ]; then
        cat >>"$meta/metadata.yaml" <<'EOF'
  /var/lib/cloud/seed/nocloud-net/meta-data:
    when: [create, copy]
    create_only: false
    template: cloud-init-meta.tpl
    properties: {}
  /var/lib/cloud/seed/nocloud-net/user-data:
    when: [create, copy]
    create_only: false
    template: cloud-init-user.tpl
    properties:
      default: |
        #cloud-config
        {}
  /var/lib/cloud/seed/nocloud-net/vendor-data:
    when: [create, copy]
    create_only: false
    template: cloud-init-vendor.tpl
    properties:
      default: |
        #cloud-config
        {}
EOF
        cat >"$meta/templates/cloud-init-meta.tpl" <<'EOF'
instance-id: {{ container.name }}
local-hostname: {{ container.name }}
{{ config_get("user.meta-data", "") }}
EOF
        # cloud-init.* keys (LXD >= 5.x) win over the older user.* keys
        cat >"$meta/templates/cloud-init-user.tpl" <<'EOF'
{% if config_get("cloud-init.user-data", "") != "" %}{{ config_get("cloud-init.user-data", "") }}{% else %}{{ config_get("user.user-data", properties.default) }}{% endif %}
EOF
        cat >"$meta/templates/cloud-init-vendor.tpl" <<'EOF'
{% if config_get("cloud-init.vendor-data", "") != "" %}{{ config_get("cloud-init.vendor-data", "") }}{% else %}{{ config_get("user.vendor-data", properties.default) }}{% endif %}
EOF
    fi

    t0=$(date +%s)
    log "pack: metadata tar.gz + uncompressed rootfs tar"
    tar -C "$meta" -czf "$META_TAR.partial" metadata.yaml templates ||
        die "packing the metadata tarball failed" "check free space in $OUT_DIR"
    tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -cpf "$ROOTFS_TAR.partial" . ||
        die "packing the rootfs tar failed" "check free space in $OUT_DIR"
    mv -f "$META_TAR.partial" "$META_TAR"
    mv -f "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    log "pack: done in $(($(date +%s) - t0)) s: $META_TAR, $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"

    umount_under "$WORK"
    rm -rf --one-file-system "$WORK"
    WORK=""
}

REUSED=0
if [ $FORCE -eq 0 ] && [ -s "$META_TAR" ] && [ -s "$ROOTFS_TAR" ]; then
    log "tarballs already built: $META_TAR, $ROOTFS_TAR (reusing; --force rebuilds)"
    REUSED=1
else
    build_tarballs
fi

if [ $DO_IMPORT -eq 0 ]; then
    log "--no-import: done. Import later with: $0 --alias $ALIAS$([ $CLOUD_INIT -eq 0 ] && echo ' --no-cloud-init')"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 2. import (POST /1.0/images multipart) + alias
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
# A split image's fingerprint is sha256(metadata tarball + rootfs). Only reused tarballs can
# already be in LXD (a fresh build has a new creation_date), so only hash those.
FP=""
[ $REUSED -eq 1 ] && FP=$(cat "$META_TAR" "$ROOTFS_TAR" | sha256sum | cut -d' ' -f1)
if [ -n "$FP" ] && lxd_ok "$(lxd_call GET "/1.0/images/$FP")"; then
    log "import: image $FP is already in LXD (same tarballs); not uploading"
else
    log "import: POST /1.0/images (metadata + rootfs, $(du -h "$ROOTFS_TAR" | cut -f1))"
    resp=$(lxd_call POST /1.0/images -H 'Expect:' \
        -F "metadata=@$META_TAR;type=application/octet-stream" \
        -F "rootfs=@$ROOTFS_TAR;type=application/octet-stream") ||
        die "upload to $SOCKET failed" "check that LXD runs (provisioning/host/prepare-lxd-host.sh --check) and that /var/lib/lxd has free space"
    lxd_ok "$resp" || die "LXD refused the image: $(lxd_err "$resp")" "see /var/log/lxd/lxd.log"
    done_op=$(lxd_wait "$resp" "image import")
    got=$(jq -r '.metadata.metadata.fingerprint // empty' <<<"$done_op")
    [ -n "$got" ] || die "image import finished without a fingerprint" "see /var/log/lxd/lxd.log"
    IMPORTED_FP=$got
    [ -z "$FP" ] || [ "$got" = "$FP" ] || log "import: note: LXD fingerprint $got differs from local sha256 $FP"
    FP=$got
    log "import: done in $(($(date +%s) - t0)) s, fingerprint $FP"
fi

desc="Debian 12 $VARIANT image built by torrust-tracker-deployer provisioning/image/build-debian-image.sh"
if [ -n "$(alias_target)" ]; then
    # --force: move the alias atomically
    resp=$(lxd_call PUT "/1.0/images/aliases/$(lxd_urlenc "$ALIAS")" -H 'Content-Type: application/json' \
        -d "$(jq -cn --arg t "$FP" --arg d "$desc" '{target: $t, description: $d}')")
else
    resp=$(lxd_call POST /1.0/images/aliases -H 'Content-Type: application/json' \
        -d "$(jq -cn --arg n "$ALIAS" --arg t "$FP" --arg d "$desc" '{name: $n, target: $t, description: $d}')")
fi
lxd_ok "$resp" || die "setting alias $ALIAS -> $FP failed: $(lxd_err "$resp")" "the imported image was removed; rerun"
[ "$(alias_target)" = "$FP" ] || die "alias $ALIAS does not point at $FP after setting it" "lxc image alias list"
ALIAS_DONE=1
log "alias: $ALIAS -> $FP"

# --force: drop the previous image if nothing else names it
if [ -n "$OLD_FP" ] && [ "$OLD_FP" != "$FP" ]; then
    old=$(lxd_call GET "/1.0/images/$OLD_FP")
    if lxd_ok "$old" && [ "$(jq '.metadata.aliases | length' <<<"$old")" = "0" ]; then
        resp=$(lxd_call DELETE "/1.0/images/$OLD_FP")
        if lxd_ok "$resp"; then
            lxd_wait "$resp" "deleting old image $OLD_FP" >/dev/null
            log "alias: removed the previous image $OLD_FP (no aliases left)"
        fi
    fi
fi
log "done: $ALIAS = $FP (socket $SOCKET)"
