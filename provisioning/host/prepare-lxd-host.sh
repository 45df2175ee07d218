#!/usr/bin/env bash
# prepare-lxd-host.sh - make a Debian/Ubuntu machine an LXD host, with or without systemd.
#
# Usage:
#   sudo provisioning/host/prepare-lxd-host.sh           # install, start, initialise (idempotent)
#   provisioning/host/prepare-lxd-host.sh --check        # only report readiness; exit 1 if not ready
#
# What it does (each step is skipped when already done):
#   1. Installs LXD, from one of two sources (LXD_FROM):
#      apt   (Debian): apt-get install lxd nftables iptables dnsmasq-base curl jq
#            (nftables before LXD starts: the firewall driver is chosen at daemon start);
#      snap  (Ubuntu, whose `lxd` package is only a wrapper of the snap, e.g. GitHub's
#            ubuntu-24.04 runners): apt-get install nftables iptables curl jq, then
#            `snap install lxd`; the `lxd` group, with the sudo user in it.
#   2. Starts LXD: `systemctl start lxd` (or `snap start lxd`) where systemd is PID 1; otherwise
#      starts lxcfs and lxd by hand (setsid nohup) and records their PIDs under $STATE_DIR
#      (default /run/torrust-deployer). A snap daemon's PID is recorded there too.
#   3. `lxd init --preseed` only for what is missing: dir storage pool `default`, bridge `lxdbr0`
#      (ipv4.nat true, ipv6.address none), default profile with eth0 on lxdbr0 + root on `default`.
#      Where Docker runs (its DOCKER-USER chain exists), traffic of the bridge is let through
#      Docker's forwarding policy (DROP), or instances reach nothing outside.
#   4. Prints the socket path.
#
# Environment:
#   LXD_FROM     `apt` or `snap` (default: snap if the lxd snap is installed or the system is
#                Ubuntu, else apt)
#   LXD_SNAP_CHANNEL  the snap's channel (default 5.21/stable, an LTS)
#   LXD_SOCKET   socket path (default: the snap's with LXD_FROM=snap; else /var/lib/lxd/unix.socket,
#                or the snap path if only that exists)
#   STATE_DIR    where PID files go (default /run/torrust-deployer)
#   LXD_POOL     storage pool name (default `default`)
#   LXD_BRIDGE   bridge name (default `lxdbr0`)
#   LXD_BRIDGE_IPV4  bridge address in CIDR form, e.g. 10.236.84.1/24 (default: the first of a
#                fixed list of candidates that overlaps no local route or address; `auto` is NOT
#                used because LXD's auto mode pings random 10.x subnets and fails on networks that
#                answer everything)
set -euo pipefail

START_TS=$(date +%s)
STATE_DIR=${STATE_DIR:-/run/torrust-deployer}
POOL=${LXD_POOL:-default}
BRIDGE=${LXD_BRIDGE:-lxdbr0}
PACKAGES=(lxd nftables iptables dnsmasq-base curl jq)
CHECK_ONLY=0

log() { printf '[prepare-lxd-host +%3ss] %s\n' "$(($(date +%s) - START_TS))" "$*"; }
die() {
    printf '[prepare-lxd-host +%3ss] ERROR: %s\n' "$(($(date +%s) - START_TS))" "$1" >&2
    [ $# -ge 2 ] && printf '    fix: %s\n' "$2" >&2
    exit 1
}

usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --check) CHECK_ONLY=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" "see --help" ;;
    esac
    shift
done

# Where LXD comes from: Debian packages it; Ubuntu ships it as a snap only.
snap_has_lxd() { command -v snap >/dev/null 2>&1 && snap list lxd >/dev/null 2>&1; }
os_id() { ( . /etc/os-release 2>/dev/null && printf '%s' "${ID:-}" ) || true; }
if [ -n "${LXD_FROM:-}" ]; then
    FROM=$LXD_FROM
elif snap_has_lxd || [ "$(os_id)" = ubuntu ]; then
    FROM=snap
else
    FROM=apt
fi
case "$FROM" in
    apt) ;;
    snap) PACKAGES=(nftables iptables curl jq) ;;
    *) die "LXD_FROM must be apt or snap, not '$FROM'" "unset LXD_FROM to let the script choose" ;;
esac
SNAP_CHANNEL=${LXD_SNAP_CHANNEL:-5.21/stable}
SNAP_SOCKET=/var/snap/lxd/common/lxd/unix.socket

if [ -n "${LXD_SOCKET:-}" ]; then
    SOCKET=$LXD_SOCKET
elif [ "$FROM" = snap ]; then
    SOCKET=$SNAP_SOCKET
elif [ ! -S /var/lib/lxd/unix.socket ] && [ -S /var/snap/lxd/common/lxd/unix.socket ]; then
    SOCKET=/var/snap/lxd/common/lxd/unix.socket
else
    SOCKET=/var/lib/lxd/unix.socket
fi

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }

# GET a path on the LXD socket; prints the body, returns curl's status.
lxd_get() { curl -sf --max-time 10 --unix-socket "$SOCKET" "http://lxd$1"; }

lxd_answers() {
    command -v curl >/dev/null 2>&1 || return 1
    [ -S "$SOCKET" ] || return 1
    curl -s --max-time 5 --unix-socket "$SOCKET" http://lxd/1.0 2>/dev/null | grep -q '"status_code":200'
}

# Does GET <path> return 200?
lxd_exists() { lxd_get "$1" >/dev/null 2>&1; }

profile_ready() {
    local p
    p=$(lxd_get /1.0/profiles/default 2>/dev/null) || return 1
    printf '%s' "$p" | jq -e --arg br "$BRIDGE" --arg pool "$POOL" '
        (.metadata.devices | to_entries | map(.value) ) as $d
        | ($d | any(.type == "nic" and (.network == $br or .parent == $br)))
          and ($d | any(.type == "disk" and .path == "/" and .pool == $pool))' >/dev/null 2>&1
}

pid_alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ]; }

# pid_of_exe PIDFILE EXE-BASENAME: prints the PID from PIDFILE if that process still runs EXE.
pid_from_file() {
    local f=$1 exe=$2 pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null || true)
    pid_alive "$pid" || return 1
    [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || true)")" = "$exe" ] || return 1
    printf '%s' "$pid"
}

ip4_to_int() {
    local IFS=. a b c d
    read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# prefixes_overlap A/LEN B/LEN
prefixes_overlap() {
    local a=${1%/*} la=${1#*/} b=${2%/*} lb=${2#*/} m ai bi
    [ "$la" = "$1" ] && la=32
    [ "$lb" = "$2" ] && lb=32
    m=$((la < lb ? la : lb))
    [ "$m" -eq 0 ] && return 0
    ai=$(ip4_to_int "$a"); bi=$(ip4_to_int "$b")
    [ $((ai >> (32 - m))) -eq $((bi >> (32 - m))) ]
}

# Print a bridge subnet (gateway/len) that overlaps no local route or address. Looks only at
# the local routing table: sends no traffic.
choose_bridge_subnet() {
    local cand used net
    used=$( { ip -4 route show 2>/dev/null | awk '$1 != "default" {print $1}'
              ip -4 -o addr show 2>/dev/null | awk '{print $4}'; } | sort -u)
    for cand in 10.236.84.1/24 10.152.33.1/24 10.97.201.1/24 172.30.211.1/24 192.168.234.1/24; do
        local clash=0
        for net in $used; do
            if prefixes_overlap "$cand" "$net"; then clash=1; break; fi
        done
        [ $clash -eq 0 ] && { echo "$cand"; return 0; }
    done
    return 1
}

# The lxd command (the snap's is not on root's PATH everywhere).
lxd_cmd() {
    if [ "$FROM" = snap ] && [ -x /snap/bin/lxd ]; then echo /snap/bin/lxd; else command -v lxd || echo /usr/bin/lxd; fi
}

systemd_is_pid1() { [ "$(cat /proc/1/comm 2>/dev/null || true)" = "systemd" ] && [ -d /run/systemd/system ]; }

# ---------------------------------------------------------------------------------------------
# --check: report only
# ---------------------------------------------------------------------------------------------
if [ "$CHECK_ONLY" -eq 1 ]; then
    ready=1
    for p in "${PACKAGES[@]}"; do
        if pkg_installed "$p"; then log "ok      package $p installed"; else log "MISSING package $p"; ready=0; fi
    done
    if [ "$FROM" = snap ]; then
        if snap_has_lxd; then log "ok      snap lxd installed"; else log "MISSING snap lxd"; ready=0; fi
    fi
    if lxd_answers; then
        info=$(lxd_get /1.0)
        log "ok      LXD answers on $SOCKET (version $(printf '%s' "$info" | jq -r '.metadata.environment.server_version // "?"'), firewall $(printf '%s' "$info" | jq -r '.metadata.environment.firewall // "?"'))"
        if lxd_exists "/1.0/storage-pools/$POOL"; then log "ok      storage pool $POOL"; else log "MISSING storage pool $POOL"; ready=0; fi
        if lxd_exists "/1.0/networks/$BRIDGE"; then log "ok      network $BRIDGE ($(lxd_get "/1.0/networks/$BRIDGE" | jq -r '.metadata.config["ipv4.address"] // "?"'))"; else log "MISSING network $BRIDGE"; ready=0; fi
        if profile_ready; then log "ok      profile default (eth0 on $BRIDGE, root on $POOL)"; else log "MISSING profile default devices (eth0 on $BRIDGE / root on $POOL)"; ready=0; fi
    else
        log "MISSING LXD does not answer on $SOCKET"
        ready=0
    fi
    for f in "$STATE_DIR/lxd.pid" "$STATE_DIR/lxcfs.pid"; do
        [ -f "$f" ] && log "info    $f = $(cat "$f")"
    done
    if [ "$ready" -eq 1 ]; then
        log "READY: LXD socket $SOCKET"
        exit 0
    fi
    log "NOT READY: run $0 (as root) to fix"
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# 0. preconditions
# ---------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)" "run: sudo $0"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: only Debian/Ubuntu hosts are supported" \
    "install LXD by your distribution's means, then rerun"
mkdir -p "$STATE_DIR"

# ---------------------------------------------------------------------------------------------
# 1. packages
# ---------------------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
    log "packages: already installed (${PACKAGES[*]})"
else
    if lxd_answers && ! pkg_installed nftables; then
        log "WARNING: LXD is already running without nftables; restart LXD after this run so it picks nftables (NAT)"
    fi
    log "packages: installing ${missing[*]} (apt-get update + install, ~20-60 s)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/tmp/prepare-lxd-host.apt.log 2>&1 ||
        die "apt-get update failed (see /tmp/prepare-lxd-host.apt.log)" "check /etc/apt/sources.list* and network access to the mirror"
    # nftables first, so it is in place before anything could start LXD.
    if [[ " ${missing[*]} " == *" nftables "* ]]; then
        apt-get install -y -q nftables >>/tmp/prepare-lxd-host.apt.log 2>&1 ||
            die "apt-get install nftables failed (see /tmp/prepare-lxd-host.apt.log)" "run apt-get install nftables by hand and read its error"
    fi
    apt-get install -y -q "${missing[@]}" >>/tmp/prepare-lxd-host.apt.log 2>&1 ||
        die "apt-get install ${missing[*]} failed (see /tmp/prepare-lxd-host.apt.log)" \
            "where 'lxd' is a snap (Ubuntu), run with LXD_FROM=snap"
    log "packages: installed ${missing[*]}"
fi
command -v nft >/dev/null 2>&1 || die "nft not found after install" "apt-get install nftables"

if [ "$FROM" = snap ]; then
    command -v snap >/dev/null 2>&1 || die "snap not found, and LXD comes from its snap here" "apt-get install snapd"
    if snap_has_lxd; then
        log "snap: lxd already installed ($(snap list lxd | awk 'NR == 2 {print $2 " " $4}'))"
    else
        # A fresh machine may still be seeding its snaps; installing waits for that.
        snap wait system seed.loaded >/dev/null 2>&1 || true
        log "snap: installing lxd from $SNAP_CHANNEL (~30-60 s)"
        snap install lxd --channel="$SNAP_CHANNEL" >/tmp/prepare-lxd-host.snap.log 2>&1 ||
            die "snap install lxd failed (see /tmp/prepare-lxd-host.snap.log)" "run 'snap install lxd' by hand and read its error"
        log "snap: installed lxd ($(snap list lxd | awk 'NR == 2 {print $2 " " $4}'))"
    fi
    # The socket's group: the snap's daemon gives it to `lxd`. Root needs no group; the user who
    # ran sudo gets it for the lxc client (from their next login).
    getent group lxd >/dev/null 2>&1 || groupadd --system lxd
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ! id -nG "$SUDO_USER" | tr ' ' '\n' | grep -qx lxd; then
        usermod -aG lxd "$SUDO_USER"
        log "snap: added $SUDO_USER to group lxd (effective from the next login)"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 2. daemon
# ---------------------------------------------------------------------------------------------
wait_ready() {
    local lxd_bin
    lxd_bin=$(lxd_cmd)
    if ! LXD_DIR=$(dirname "$SOCKET") "$lxd_bin" waitready --timeout=60 >/dev/null 2>&1; then
        [ -f /var/log/lxd/lxd.log ] && tail -n 20 /var/log/lxd/lxd.log >&2
        die "LXD did not become ready within 60 s on $SOCKET" "read /var/log/lxd/lxd.log (and /var/log/lxd/lxd.stdout)"
    fi
}

if lxd_answers; then
    log "daemon: LXD already answers on $SOCKET (nothing started)"
elif systemd_is_pid1; then
    log "daemon: systemd is PID 1, running systemctl start lxd"
    if systemctl list-unit-files lxd.service >/dev/null 2>&1 && systemctl list-unit-files lxd.service | grep -q '^lxd.service'; then
        systemctl start lxd || die "systemctl start lxd failed" "journalctl -u lxd -n 50"
    elif snap_has_lxd; then
        snap start lxd || die "snap start lxd failed" "journalctl -u snap.lxd.daemon -n 50"
    else
        die "no lxd.service unit found" "reinstall the lxd package"
    fi
    wait_ready
    log "daemon: LXD ready"
else
    log "daemon: PID 1 is $(cat /proc/1/comm 2>/dev/null || echo '?'), not systemd: starting lxcfs and lxd by hand"
    LXD_BIN=/usr/bin/lxd
    [ -x "$LXD_BIN" ] || LXD_BIN=$(command -v lxd) || die "lxd binary not found" "apt-get install lxd"
    # A lxcfs that died (e.g. killed with the session that started it) leaves its FUSE mount
    # behind: "Transport endpoint is not connected". Drop the dead mount so it can start again.
    if grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts && ! stat /var/lib/lxcfs >/dev/null 2>&1; then
        log "daemon: /var/lib/lxcfs is a dead lxcfs mount (its process is gone); unmounting it"
        umount -l /var/lib/lxcfs || fusermount -u -z /var/lib/lxcfs || true
    fi
    mkdir -p /var/lib/lxcfs /var/log/lxd

    # lxcfs: only if not already mounted.
    if grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts; then
        log "daemon: lxcfs already mounted on /var/lib/lxcfs"
    elif command -v lxcfs >/dev/null 2>&1; then
        setsid nohup lxcfs /var/lib/lxcfs >/var/log/lxd/lxcfs.log 2>&1 </dev/null &
        echo $! >"$STATE_DIR/lxcfs.pid"
        for _ in $(seq 1 50); do grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts && break; sleep 0.1; done
        if grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts; then
            log "daemon: lxcfs started, PID $(cat "$STATE_DIR/lxcfs.pid") ($STATE_DIR/lxcfs.pid)"
        else
            log "WARNING: lxcfs did not mount /var/lib/lxcfs (see /var/log/lxd/lxcfs.log); containers still work without it"
        fi
    else
        log "WARNING: lxcfs not installed; containers will see the host's /proc/meminfo etc."
    fi

    # lxd: reuse a recorded, still running daemon (it may be starting up), else start one.
    if pid=$(pid_from_file "$STATE_DIR/lxd.pid" lxd); then
        log "daemon: lxd PID $pid (recorded) is running but not answering yet; waiting"
    else
        setsid nohup "$LXD_BIN" --group root --logfile=/var/log/lxd/lxd.log >/var/log/lxd/lxd.stdout 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$STATE_DIR/lxd.pid"
        log "daemon: lxd started, PID $pid ($STATE_DIR/lxd.pid), log /var/log/lxd/lxd.log"
    fi
    wait_ready
    pid_alive "$pid" || die "lxd (PID $pid) exited" "read /var/log/lxd/lxd.log"
    log "daemon: LXD ready"
fi

info=$(lxd_get /1.0) || die "GET /1.0 on $SOCKET failed after start" "check permissions on $SOCKET"
if [ "$FROM" = snap ]; then
    # The daemon's own PID, as for the one started by hand (a test restarts LXD by it).
    server_pid=$(printf '%s' "$info" | jq -r '.metadata.environment.server_pid // empty')
    if [ -n "$server_pid" ]; then
        echo "$server_pid" >"$STATE_DIR/lxd.pid"
        log "daemon: snap lxd PID $server_pid ($STATE_DIR/lxd.pid)"
    fi
fi
fw=$(printf '%s' "$info" | jq -r '.metadata.environment.firewall // ""')
log "daemon: LXD $(printf '%s' "$info" | jq -r '.metadata.environment.server_version // "?"'), firewall driver: ${fw:-unknown}"
if [ "$fw" = "xtables" ] && command -v nft >/dev/null 2>&1; then
    log "WARNING: LXD uses xtables; if containers have no outbound NAT, restart LXD now that nftables is installed"
fi

# ---------------------------------------------------------------------------------------------
# 3. init (only what is missing)
# ---------------------------------------------------------------------------------------------
need_pool=1; need_net=1; need_profile=1
lxd_exists "/1.0/storage-pools/$POOL" && need_pool=0
lxd_exists "/1.0/networks/$BRIDGE" && need_net=0
profile_ready && need_profile=0

if [ $need_pool -eq 0 ] && [ $need_net -eq 0 ] && [ $need_profile -eq 0 ]; then
    log "init: already initialised (pool $POOL, network $BRIDGE, default profile) - no-op"
else
    preseed=""
    if [ $need_net -eq 1 ]; then
        subnet=${LXD_BRIDGE_IPV4:-}
        if [ -z "$subnet" ]; then
            subnet=$(choose_bridge_subnet) ||
                die "every candidate bridge subnet overlaps a local route" "set LXD_BRIDGE_IPV4=<gateway>/<len> to a free subnet"
        fi
        log "init: bridge $BRIDGE will use $subnet"
        preseed+="networks:
- name: $BRIDGE
  type: bridge
  config:
    ipv4.address: $subnet
    ipv4.nat: \"true\"
    ipv6.address: none
"
    fi
    if [ $need_pool -eq 1 ]; then
        preseed+="storage_pools:
- name: $POOL
  driver: dir
"
    fi
    if [ $need_profile -eq 1 ]; then
        # Keep whatever else the default profile has; set eth0 and root.
        preseed+="profiles:
- name: default
  devices:
    eth0:
      name: eth0
      network: $BRIDGE
      type: nic
    root:
      path: /
      pool: $POOL
      type: disk
"
    fi
    log "init: lxd init --preseed for:$([ $need_net -eq 1 ] && echo " network $BRIDGE")$([ $need_pool -eq 1 ] && echo " pool $POOL")$([ $need_profile -eq 1 ] && echo " default profile")"
    if ! out=$(printf '%s' "$preseed" | LXD_DIR=$(dirname "$SOCKET") "$(lxd_cmd)" init --preseed 2>&1); then
        printf '%s\n--- preseed ---\n%s\n' "$out" "$preseed" >&2
        die "lxd init --preseed failed" "read the message above; 'lxc storage list', 'lxc network list', 'lxc profile show default' show the current state"
    fi
    profile_ready || die "default profile still lacks eth0 on $BRIDGE / root on $POOL after init" "lxc profile show default"
    log "init: done"
fi

# ---------------------------------------------------------------------------------------------
# 3b. Docker's forwarding policy
# ---------------------------------------------------------------------------------------------
# Docker sets the FORWARD policy to DROP, and its DOCKER-USER chain is where the administrator
# adds exceptions: without these two, instances on the bridge reach nothing outside the host.
if command -v iptables >/dev/null 2>&1 && iptables -S DOCKER-USER >/dev/null 2>&1; then
    for rule in "-i $BRIDGE -j ACCEPT" "-o $BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"; do
        # shellcheck disable=SC2086 # the rule is words
        if iptables -C DOCKER-USER $rule 2>/dev/null; then
            log "docker: DOCKER-USER already accepts: $rule"
        else
            # shellcheck disable=SC2086
            iptables -I DOCKER-USER $rule || die "iptables -I DOCKER-USER $rule failed" "iptables -S DOCKER-USER"
            log "docker: DOCKER-USER now accepts: $rule"
        fi
    done
fi

net_addr=$(lxd_get "/1.0/networks/$BRIDGE" | jq -r '.metadata.config["ipv4.address"] // "?"')
log "ready: pool $POOL (dir), bridge $BRIDGE $net_addr, firewall ${fw:-unknown}"
for f in "$STATE_DIR"/lxd.pid "$STATE_DIR"/lxcfs.pid; do
    [ -f "$f" ] && log "ready: PID file $f = $(cat "$f")"
done
log "LXD socket: $SOCKET"
echo "$SOCKET"
