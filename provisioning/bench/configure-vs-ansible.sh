#!/usr/bin/env bash
# Benchmark (not a test): `torrust-tracker-deployer configure` on a fresh container, cold and as a
# no-op rerun, against an Ansible playbook doing the same work (provisioning/bench/ansible/, builtin
# modules only) on a twin container, in the same run. Prints a Markdown table for
# docs/benchmarks.md, with the SSH connections each side opened.
#
# Usage: provisioning/bench/configure-vs-ansible.sh [BINARY]
# Needs: LXD and the torrust/debian-12 image (provisioning/ci/install-lxd-test-deps.sh); installs
# ansible-core from PyPI into a venv under /var/cache/torrust-deployer.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/torrust-tracker-deployer}
if [ ! -x "$bin" ]; then cargo build --release --locked; fi
venv=/var/cache/torrust-deployer/ansible-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q ansible-core
fi
work=$(mktemp -d)
data="$work/data"
trap '"$bin" --data-dir "$data" -q destroy bench-cfg-ours >/dev/null 2>&1 || true;
      "$bin" --data-dir "$data" -q destroy bench-cfg-ansible >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

env_file() {
  cat > "$work/$1.json" <<JSON
{ "environment": { "name": "$1" }, "ssh_credentials": {},
  "provider": { "provider": "lxd", "profile_name": "$1", "image": "torrust/debian-12" },
  "tracker": { "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
    "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
    "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "BenchToken0123456789abcdef" } } }
JSON
  "$bin" --data-dir "$data" -q create environment --env-file "$work/$1.json" >/dev/null
  "$bin" --data-dir "$data" -q provision "$1" >/dev/null
}
env_file bench-cfg-ours
env_file bench-cfg-ansible

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

ours() {
  local t0 t1 out
  t0=$(now)
  out=$("$bin" --data-dir "$data" -q -o json configure bench-cfg-ours)
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(echo "$out" | jq .ssh_connections)"
}

ip=$(jq -r .host.ip "$data/bench-cfg-ansible/state.json")
printf '[all]\n%s ansible_user=torrust ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3\n' \
  "$ip" "$data/bench-cfg-ansible/ssh/id_ed25519" > "$work/inventory"
theirs() {
  local t0 t1 log=$work/ansible-$1.log
  t0=$(now)
  # Count the SSH connections: no connection sharing, so each `ssh` run is one connection, and
  # -vvv logs each as "SSH: EXEC ssh".
  ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_ARGS="-o ControlMaster=no" \
    "$venv/bin/ansible-playbook" -vvv -i "$work/inventory" provisioning/bench/ansible/configure.yml >"$log" 2>&1
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(grep -c 'SSH: EXEC ssh' "$log")"
}

read -r ours_cold ours_cold_conn < <(ours)
read -r theirs_cold theirs_cold_conn < <(theirs cold)
read -r ours_noop ours_noop_conn < <(ours)
read -r theirs_noop theirs_noop_conn < <(theirs noop)

echo "| run | deployer configure (s) | SSH conns | Ansible playbook (s) | SSH conns | ratio |"
echo "|---|---|---|---|---|---|"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| cold | $ours_cold | $ours_cold_conn | $theirs_cold | $theirs_cold_conn | $(ratio "$ours_cold" "$theirs_cold") |"
echo "| no-op rerun | $ours_noop | $ours_noop_conn | $theirs_noop | $theirs_noop_conn | $(ratio "$ours_noop" "$theirs_noop") |"
