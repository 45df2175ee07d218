#!/usr/bin/env bash
# One command from a fresh Debian or Ubuntu machine (as root) to a running, tested demo tracker:
#
#   bash provisioning/demo.sh            # images from the offline bundle (no registry needed)
#   bash provisioning/demo.sh --pull     # images pulled from Docker Hub by the instance
#
# It prepares this machine as an LXD host (no systemd needed), builds a Debian 12 image offline,
# builds the deployer, writes the demo environment from the deployer's built-in template, and
# runs `deploy`, which ends with the announce URLs and the result of `test`. Safe to run again:
# every step checks first. Remove the demo with:
#   target/release/torrust-tracker-deployer destroy demo
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
say() { echo "[demo +$((SECONDS - start))s] $*"; }

say "LXD host"
bash provisioning/host/prepare-lxd-host.sh >/dev/null
say "Debian 12 image (offline, debootstrap)"
bash provisioning/image/build-debian-image.sh >/dev/null
say "the deployer (cargo build --release)"
bash provisioning/ci/install-build-deps.sh >/dev/null
cargo build --release --locked --quiet
bin=${CARGO_TARGET_DIR:-target}/release/torrust-tracker-deployer

images='{}'
if [[ ${1:-} != --pull ]]; then
  say "offline image bundle (the real tracker built from crates.io, ~14 min the first time)"
  bundle=$(bash provisioning/images/build-offline-bundle.sh | tail -n1)
  images=$(jq -n --arg b "$bundle" '{offline_bundle: $b}')
fi

mkdir -p demo
if [[ ! -f demo/demo.json ]]; then
  # The built-in template (fresh random API token), on the local image.
  "$bin" create template demo/demo.json --provider lxd >/dev/null
fi
jq --argjson images "$images" '.environment.name = "demo"
    | .provider.profile_name = "torrust-profile-demo"
    | .provider.image = "torrust/debian-12"
    | .images = $images' demo/demo.json >demo/demo.json.new
mv demo/demo.json.new demo/demo.json

say "deploy"
"$bin" --data-dir demo/data deploy demo --env-file demo/demo.json
say "done. Inspect with: $bin --data-dir demo/data status demo"
