#!/usr/bin/env bash
# Benchmark (not a test): 4 environments deployed in one command (`deploy A B C D --jobs 4`)
# against the same 4 deployed one after the other (`deploy A`, then `deploy B`, ...), each from
# nothing (create and provision included) on fresh containers, in the same run; the order of the
# two alternates per round. Each round also destroys the 4 in one command (`destroy A B C D`).
# Prints a table per round (with the load average before each side) and min/median/max.
#
# Usage: provisioning/bench/several.sh [ROUNDS] [BINARY]   (default 2 rounds)
# Needs: LXD, the torrust/debian-12 image and the offline bundle (provisioning/test.sh prepares
# all three).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
bin=${2:-${CARGO_TARGET_DIR:-target}/release/torrust-tracker-deployer}
if [ ! -x "$bin" ]; then cargo build --release --locked; fi
command -v jq >/dev/null || apt-get install -y -q jq >/dev/null
bundle=$(readlink -f /var/cache/torrust-deployer/bundle/current)
envs=(bench-multi-1 bench-multi-2 bench-multi-3 bench-multi-4)
work=$(mktemp -d)
data=$work/data
cleanup() {
  "$bin" --data-dir "$data" -q destroy "${envs[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

"$bin" create template "$work/template.json" --provider lxd >/dev/null
files=()
for env in "${envs[@]}"; do
  jq --arg b "$bundle" --arg n "$env" '.environment.name = $n
    | .provider.profile_name = ("torrust-profile-" + $n) | .provider.image = "torrust/debian-12"
    | .images = { offline_bundle: $b }' "$work/template.json" > "$work/$env.json"
  files+=(--env-file "$work/$env.json")
done

# Destroys the 4 in one command and forgets them; prints the seconds.
destroy_all() {
  local t0 t1
  t0=$(now)
  "$bin" --data-dir "$data" -o json destroy "${envs[@]}" > "$work/destroy.json" 2>>"$work/out.log"
  t1=$(now)
  rm -rf "$data"
  secs "$t0" "$t1"
}

sequential() { # prints "TOTAL E1 E2 E3 E4"
  local t0 t1 each=() e0
  t0=$(now)
  for env in "${envs[@]}"; do
    e0=$(now)
    "$bin" --data-dir "$data" -q deploy "$env" --env-file "$work/$env.json" >>"$work/out.log" 2>&1
    each+=("$(secs "$e0" "$(now)")")
  done
  t1=$(now)
  echo "$(secs "$t0" "$t1") ${each[*]}"
}

parallel() { # prints "TOTAL E1 E2 E3 E4" (each one's elapsed as the summary gives it)
  local t0 t1
  t0=$(now)
  "$bin" --data-dir "$data" -o json deploy "${envs[@]}" "${files[@]}" --jobs 4 \
    > "$work/several.json" 2>>"$work/out.log"
  t1=$(now)
  echo "$(secs "$t0" "$t1") $(jq -r '[.environments[] | .elapsed_ms / 1000 | . * 10 | round / 10] | join(" ")' "$work/several.json")"
}

all=$work/all.tsv
for round in $(seq 1 "$rounds"); do
  order=(sequential parallel)
  [ $((round % 2)) -eq 0 ] && order=(parallel sequential)
  declare -A total each before destroyed
  for side in "${order[@]}"; do
    before[$side]=$(load)
    read -r t rest < <("$side")
    total[$side]=$t; each[$side]=$rest
    destroyed[$side]=$(destroy_all)
  done
  echo
  echo "Round $round (${order[0]} first)"
  echo
  echo "| side | 4 deploys (s) | each (s) | destroy A B C D (s) | load average before |"
  echo "|---|---|---|---|---|"
  for side in sequential parallel; do
    echo "| $side | ${total[$side]} | ${each[$side]} | ${destroyed[$side]} | ${before[$side]} |"
  done
  echo "| parallel / sequential | $(awk -v a="${total[parallel]}" -v b="${total[sequential]}" 'BEGIN { printf "%.2f", a / b }') | | | |"
  printf '%s\t%s\n' "${total[sequential]}" "${total[parallel]}" >> "$all"
done

stats() { cut -f "$1" "$all" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f / %.1f / %.1f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo
echo "Summary, $rounds rounds (min / median / max, seconds): one after the other $(stats 1); in one command (--jobs 4) $(stats 2)"
