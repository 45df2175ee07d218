#!/usr/bin/env bash
# Benchmark (not a test): `deploy` end to end on a fresh container with the offline bundle, then
# on the deployed environment: `deploy --dry-run` and a no-op `deploy` (time and SSH connections),
# and `release` + `run` with the images present against the floor (the rendered files in one tar
# over one SSH command, `compose up -d`, then the first healthy answer of the HTTP tracker).
# Several rounds, each on a fresh container; prints a table per round and min/median/max.
#
# Usage: provisioning/bench/deploy.sh [ROUNDS] [BINARY]   (default 3 rounds)
# Needs: LXD, the torrust/debian-12 image and the offline bundle (provisioning/test.sh prepares
# all three: ci/install-lxd-test-deps.sh, images/build-offline-bundle.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
bin=${2:-${CARGO_TARGET_DIR:-target}/release/torrust-tracker-deployer}
if [ ! -x "$bin" ]; then cargo build --release --locked; fi
command -v jq >/dev/null || apt-get install -y -q jq >/dev/null
bundle=$(readlink -f /var/cache/torrust-deployer/bundle/current)
env=bench-deploy
work=$(mktemp -d)
data=$work/data
rule=""
cleanup() {
  [ -n "$rule" ] && iptables -D OUTPUT $rule 2>/dev/null || true
  "$bin" --data-dir "$data" -q destroy "$env" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
conns() { iptables -L OUTPUT -v -n -x | awk '/torrust-bench-deploy/ { n += $1 } END { print n + 0 }'; }
timed() { # timed CMD...: runs it, prints "SECONDS CONNECTIONS"
  local c0 t0 t1
  c0=$(conns); t0=$(now)
  "$@" >>"$work/out.log" 2>&1
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(($(conns) - c0))"
}
remote() {
  ssh -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -i "$data/$env/ssh/id_ed25519" "torrust@$ip" "$@"
}
# Stops the stack and removes the files release uploads (directories and data stay), so that
# both sides start from a configured host with its images and storage directories.
# (`render` writes them under DIR mirroring the host's paths.)
reset_stack() {
  remote "cd /opt/torrust && sudo $compose down -t 2 >/dev/null 2>&1; true"
  local files
  files=$(cd "$work/render" && find . -type f | sed 's|^\.||' | tr '\n' ' ')
  remote "sudo rm -f $files"
}
floor() {
  local t0 t1 c0
  c0=$(conns); t0=$(now)
  remote "sudo tar -x -C / && cd /opt/torrust && sudo $compose up -d" \
    <"$work/floor.tar" >>"$work/floor.log" 2>&1
  until curl -fsS --max-time 1 -o /dev/null "http://$ip:7070/health_check" 2>/dev/null; do
    if [ "$(secs "$t0" "$(now)" | cut -d. -f1)" -ge 120 ]; then
      echo "floor: the tracker did not answer within 120 s; compose said:" >&2
      cat "$work/floor.log" >&2
      remote "cd /opt/torrust && sudo $compose ps" >&2
      exit 1
    fi
    sleep 0.05
  done
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(($(conns) - c0))"
}

"$bin" create template "$work/template.json" --provider lxd >/dev/null
jq --arg b "$bundle" --arg n "$env" '.environment.name = $n
  | .provider.profile_name = ("torrust-profile-" + $n) | .provider.image = "torrust/debian-12"
  | .images = { offline_bundle: $b }' "$work/template.json" > "$work/env.json"

all=$work/all.tsv
for round in $(seq 1 "$rounds"); do
  # A fresh container: create and provision are part of deploy's time, as an operator sees it.
  t0=$(now)
  "$bin" --data-dir "$data" -o json deploy "$env" --env-file "$work/env.json" > "$work/deploy.json" 2>>"$work/out.log"
  t1=$(now)
  full=$(secs "$t0" "$t1")
  phases=$(jq -r '[.phases[] | "\(.phase) \(.elapsed_ms / 1000 | . * 10 | round / 10)"] | join(", ")' "$work/deploy.json")
  ip=$(jq -r .host.ip "$data/$env/state.json")
  compose=$(jq -r .host_setup.compose_command "$data/$env/state.json")
  rule="-p tcp -d $ip --dport 22 --syn -m comment --comment torrust-bench-deploy -j ACCEPT"
  iptables -I OUTPUT $rule

  read -r dry dry_conn < <(timed "$bin" --data-dir "$data" -o json deploy "$env" --dry-run)
  "$bin" --data-dir "$data" -o json deploy "$env" --dry-run > "$work/dry.json" 2>/dev/null
  dry_changed=$(jq -r '[.phases[] | select(.changed)] | length' "$work/dry.json")
  noops=()
  for _ in 1 2 3; do
    read -r s c < <(timed "$bin" --data-dir "$data" -q deploy "$env")
    noops+=("$s"); noop_conn=$c
  done
  noop=$(printf '%s\n' "${noops[@]}" | sort -g | sed -n 2p)

  rm -rf "$work/render"
  "$bin" --data-dir "$data" -q render --env-name "$env" --instance-ip "$ip" --output-dir "$work/render" >/dev/null
  # The floor uploads the very files release placed (owners and modes included), as one tar.
  files=$(cd "$work/render" && find . -type f | sed 's|^\./||' | tr '\n' ' ')
  remote "sudo tar -C / -cf - $files" >"$work/floor.tar"
  reset_stack
  t0=$(now); c0=$(conns)
  "$bin" --data-dir "$data" -q release "$env" >>"$work/out.log" 2>&1
  "$bin" --data-dir "$data" -q run "$env" >>"$work/out.log" 2>&1
  t1=$(now)
  rr=$(secs "$t0" "$t1"); rr_conn=$(($(conns) - c0))
  reset_stack
  read -r fl fl_conn < <(floor)
  # Leave it as deploy expects (our files back), then remove it.
  "$bin" --data-dir "$data" -q deploy "$env" >>"$work/out.log" 2>&1

  echo
  echo "Round $round: deploy phases (s): $phases"
  echo
  echo "| measure | seconds | SSH connections |"
  echo "|---|---|---|"
  echo "| deploy, fresh container, bundled images | $full | |"
  echo "| deploy --dry-run, deployed (phases that would change: $dry_changed) | $dry | $dry_conn |"
  echo "| no-op deploy (median of 3) | $noop | $noop_conn |"
  echo "| release + run, images present | $rr | $rr_conn |"
  echo "| floor: one tar over SSH + compose up + first healthy answer | $fl | $fl_conn |"
  echo "| release + run / floor | $(awk -v a="$rr" -v b="$fl" 'BEGIN { printf "%.2f", a / b }') | |"
  printf '%s\t%s\t%s\t%s\t%s\n' "$full" "$dry" "$noop" "$rr" "$fl" >> "$all"

  iptables -D OUTPUT $rule; rule=""
  "$bin" --data-dir "$data" -q destroy "$env" >/dev/null
  rm -rf "$data"
done

stats() { cut -f "$1" "$all" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f / %.2f / %.2f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo
echo "Summary, $rounds rounds (min / median / max, seconds)"
echo
echo "| measure | seconds |"
echo "|---|---|"
echo "| deploy, fresh container, bundled images | $(stats 1) |"
echo "| deploy --dry-run, deployed | $(stats 2) |"
echo "| no-op deploy | $(stats 3) |"
echo "| release + run, images present | $(stats 4) |"
echo "| floor for release + run | $(stats 5) |"
