#!/usr/bin/env bash
# Build the real Torrust Tracker from crates.io, once per version, cached outside the repo.
#
#   provisioning/tracker/build-tracker.sh [VERSION]      (default 3.0.0)
#
# Result: $TRACKER_CACHE/<version>/bin/{torrust-tracker,http_health_check} (stripped; the second is
# the health probe the official image's HEALTHCHECK runs). A cold build takes about
# 14 minutes on 2 cores; later runs return at once. A failed or interrupted build leaves no
# binary behind, so the next run starts again from scratch.
set -euo pipefail
version=${1:-${TRACKER_VERSION:-3.0.0}}
cache=${TRACKER_CACHE:-/var/cache/torrust-deployer/tracker}
dest="$cache/$version"
bin="$dest/bin/torrust-tracker"
probe="$dest/bin/http_health_check"
mkdir -p "$cache"

exec 9>"$cache/.build.lock"
flock 9   # one build at a time; a second caller waits and then finds the cached binary

if [[ -x $bin && -x $probe ]]; then
  echo "tracker $version: cached at $bin"
  exit 0
fi

start=$SECONDS
echo "tracker $version: building from crates.io (about 14 min on 2 cores) ..."
work="$cache/.build-$version"
rm -rf "$work"
mkdir -p "$work"
# Progress with elapsed time while cargo works (it is quiet for long stretches under LTO).
( while sleep 60; do echo "  ... still building, $((SECONDS - start)) s"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
CARGO_TARGET_DIR="$work/target" nice -n 5 cargo install torrust-tracker \
  --version "=$version" --locked --root "$work/root" --quiet
mkdir -p "$dest/bin"
for b in http_health_check torrust-tracker; do   # the tracker last: its presence marks success
  strip "$work/root/bin/$b"
  mv "$work/root/bin/$b" "$dest/bin/$b.tmp"
  mv "$dest/bin/$b.tmp" "$dest/bin/$b"
done
rm -rf "$work"
echo "tracker $version: built in $((SECONDS - start)) s -> $bin"
