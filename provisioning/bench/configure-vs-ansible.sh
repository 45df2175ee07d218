#!/usr/bin/env bash
# Benchmark (not a test): `torrust-tracker-deployer configure` against Ansible at its defaults and
# against the floor, side by side on twin containers, for several rounds. Prints a Markdown table
# per round and a min/median/max summary for docs/benchmarks.md.
#
#   ours    `configure` on a fresh container (cold), then again (no-op)
#   ansible provisioning/bench/ansible/configure.yml (ansible-core, builtin modules), at Ansible's
#           defaults: its SSH connection sharing on (ControlMaster=auto, ControlPersist=60s),
#           cold, then again (no-op)
#   floor   the same packages by one bare `apt-get update && apt-get install
#           --no-install-recommends` over one SSH command: no work can be cheaper than this
#
# Each round provisions three twin containers from torrust/debian-12 (not timed) and runs the three
# sides in a rotated order (round 1: ours, ansible, floor; round 2: ansible, floor, ours; ...), so
# no side always runs first on a cold mirror cache. SSH connections are counted by the kernel: an
# iptables rule per container counts the TCP SYNs to its port 22 (removed on exit).
#
# Usage: provisioning/bench/configure-vs-ansible.sh [ROUNDS] [BINARY]   (default 3 rounds)
# Needs: LXD and the torrust/debian-12 image (provisioning/ci/install-lxd-test-deps.sh); installs
# ansible-core from PyPI into a venv under /var/cache/torrust-deployer.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
bin=${2:-${CARGO_TARGET_DIR:-target}/release/torrust-tracker-deployer}
if [ ! -x "$bin" ]; then cargo build --release --locked; fi
venv=/var/cache/torrust-deployer/ansible-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q ansible-core
fi
command -v jq >/dev/null || apt-get install -y -q jq >/dev/null
work=$(mktemp -d)
data="$work/data"
export ANSIBLE_HOME="$work/ansible-home" # its control sockets too: nothing shared across runs
rules=()
cleanup() {
  for r in "${rules[@]}"; do iptables -D OUTPUT $r 2>/dev/null || true; done
  for e in ours ansible floor; do "$bin" --data-dir "$data" -q destroy "bench-$e" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

provision() {
  cat > "$work/$1.json" <<JSON
{ "environment": { "name": "$1" }, "ssh_credentials": {},
  "provider": { "provider": "lxd", "profile_name": "$1", "image": "torrust/debian-12" },
  "tracker": { "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
    "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
    "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "BenchToken0123456789abcdef" } } }
JSON
  "$bin" --data-dir "$data" -q create environment --env-file "$work/$1.json" >/dev/null
  "$bin" --data-dir "$data" -q provision "$1" >/dev/null
  local ip
  ip=$(jq -r .host.ip "$data/$1/state.json")
  local rule="-p tcp -d $ip --dport 22 --syn -m comment --comment torrust-bench-$1 -j ACCEPT"
  iptables -I OUTPUT $rule
  rules+=("$rule")
  echo "$ip"
}

# TCP connections opened to a container's SSH port so far.
conns() {
  iptables -L OUTPUT -v -n -x | awk -v c="torrust-bench-$1" '$0 ~ c { n += $1 } END { print n + 0 }'
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Each side prints "SECONDS CONNECTIONS".
ours() {
  local c0 t0 t1
  c0=$(conns bench-ours); t0=$(now)
  "$bin" --data-dir "$data" -q configure bench-ours >/dev/null
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(($(conns bench-ours) - c0))"
}
ansible() {
  local c0 t0 t1 ip
  ip=$(jq -r .host.ip "$data/bench-ansible/state.json")
  printf '[all]\n%s ansible_user=torrust ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3\n' \
    "$ip" "$data/bench-ansible/ssh/id_ed25519" > "$work/inventory"
  c0=$(conns bench-ansible); t0=$(now)
  ANSIBLE_HOST_KEY_CHECKING=False "$venv/bin/ansible-playbook" -i "$work/inventory" \
    provisioning/bench/ansible/configure.yml >>"$work/ansible.log" 2>&1
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(($(conns bench-ansible) - c0))"
}
floor() {
  local c0 t0 t1 ip
  ip=$(jq -r .host.ip "$data/bench-floor/state.json")
  c0=$(conns bench-floor); t0=$(now)
  ssh -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -i "$data/bench-floor/ssh/id_ed25519" "torrust@$ip" \
    'cloud-init status --wait >/dev/null; sudo DEBIAN_FRONTEND=noninteractive sh -c \
     "apt-get -q update && apt-get -q install -y --no-install-recommends docker.io docker-compose unattended-upgrades ufw"' \
    >>"$work/floor.log" 2>&1
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(($(conns bench-floor) - c0))"
}

declare -A cold noop conn_cold conn_noop
sides=(ours ansible floor)
all=$work/all.tsv
for round in $(seq 1 "$rounds"); do
  for e in ours ansible floor; do provision "bench-$e" >/dev/null; done
  shift_by=$(((round - 1) % 3))
  order=("${sides[@]:$shift_by}" "${sides[@]:0:$shift_by}")
  for side in "${order[@]}"; do read -r cold[$side] conn_cold[$side] < <($side); done
  for side in "${order[@]}"; do
    [ "$side" = floor ] && continue
    read -r noop[$side] conn_noop[$side] < <($side)
  done
  echo
  echo "Round $round (order: ${order[*]})"
  echo
  echo "| run | deployer configure (s) | conns | Ansible, defaults (s) | conns | floor: bare apt-get (s) | conns | ours / Ansible | ours / floor |"
  echo "|---|---|---|---|---|---|---|---|---|"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  echo "| cold | ${cold[ours]} | ${conn_cold[ours]} | ${cold[ansible]} | ${conn_cold[ansible]} | ${cold[floor]} | ${conn_cold[floor]} | $(ratio "${cold[ours]}" "${cold[ansible]}") | $(ratio "${cold[ours]}" "${cold[floor]}") |"
  echo "| no-op | ${noop[ours]} | ${conn_noop[ours]} | ${noop[ansible]} | ${conn_noop[ansible]} | | | $(ratio "${noop[ours]}" "${noop[ansible]}") | |"
  printf '%s\t%s\t%s\t%s\t%s\n' "${cold[ours]}" "${cold[ansible]}" "${cold[floor]}" "${noop[ours]}" "${noop[ansible]}" >> "$all"
  for r in "${rules[@]}"; do iptables -D OUTPUT $r 2>/dev/null || true; done
  rules=()
  for e in ours ansible floor; do "$bin" --data-dir "$data" -q destroy "bench-$e" >/dev/null; done
  rm -rf "$data"
done

# min / median / max of column $1 of the rounds.
stats() { cut -f "$1" "$all" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f / %.2f / %.2f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo
echo "Summary, $rounds rounds (min / median / max, seconds)"
echo
echo "| run | deployer configure | Ansible, defaults | floor: bare apt-get |"
echo "|---|---|---|---|"
echo "| cold | $(stats 1) | $(stats 2) | $(stats 3) |"
echo "| no-op | $(stats 4) | $(stats 5) | |"
