#!/usr/bin/env bash
# Benchmark (not a test): `torrust-tracker-deployer provision` from a cached local image to
# SSH-ready, against the baseline `lxc launch` + waiting until SSH accepts the key, in the same
# run, alternating. Results go to stdout as a Markdown table for docs/benchmarks.md.
#
# Usage: provisioning/bench/provision-vs-lxc.sh [RUNS] [BINARY]
#   RUNS    rounds of each (default 3)
#   BINARY  the deployer (default target/release/torrust-tracker-deployer, built if missing)
# Needs: LXD and the torrust/debian-12 image (provisioning/ci/install-lxd-test-deps.sh), and the
# `lxc` and `ssh` clients for the baseline only.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
bin=${2:-target/release/torrust-tracker-deployer}
image=torrust/debian-12
if [ ! -x "$bin" ]; then cargo build --release --locked; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N "" -f "$work/key"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

baseline() {
  local name=bench-lxc-$1 ip="" t0 t1
  local ud
  ud=$(printf '#cloud-config\nusers:\n  - name: torrust\n    shell: /bin/bash\n    sudo: "ALL=(ALL) NOPASSWD:ALL"\n    ssh_authorized_keys:\n      - %s\n' "$(cat "$work/key.pub")")
  t0=$(now)
  lxc launch "$image" "$name" -c security.nesting=true -c cloud-init.user-data="$ud" >/dev/null
  until [ -n "$ip" ]; do
    ip=$(lxc list "$name" -c 4 --format csv | grep -o '^[0-9.]*' | head -n1 || true)
    [ -n "$ip" ] || sleep 0.2
  done
  until ssh -q -i "$work/key" -o BatchMode=yes -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 "torrust@$ip" true 2>/dev/null; do
    sleep 0.2
  done
  t1=$(now)
  lxc delete -f "$name" >/dev/null
  elapsed "$t0" "$t1"
}

ours() {
  local name=bench-ours-$1 t0 t1
  cat > "$work/$name.json" <<JSON
{
  "environment": { "name": "$name" },
  "ssh_credentials": {},
  "provider": { "provider": "lxd", "profile_name": "$name", "image": "$image" },
  "tracker": {
    "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
    "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
    "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
    "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "BenchToken0123456789abcdef" }
  }
}
JSON
  "$bin" --data-dir "$work/data" -q create environment --env-file "$work/$name.json" >/dev/null
  t0=$(now)
  if "$bin" --data-dir "$work/data" -q provision "$name" >/dev/null 2>"$work/$name.err"; then
    t1=$(now)
    elapsed "$t0" "$t1"
  else
    echo "failed ($(grep -o 'step failed: [a-z ]*' "$work/$name.err" | head -n1))"
  fi
  "$bin" --data-dir "$work/data" -q destroy "$name" >/dev/null 2>&1 || true
}

echo "| round | lxc launch + SSH (s) | deployer provision (s) |"
echo "|---|---|---|"
for i in $(seq 1 "$runs"); do
  b=$(baseline "$i")
  o=$(ours "$i")
  echo "| $i | $b | $o |"
done
