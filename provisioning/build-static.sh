#!/usr/bin/env bash
# Builds the static x86_64-unknown-linux-musl release binary and checks that it is static.
# Usage: provisioning/build-static.sh   (prints the binary's path last)
set -euo pipefail
cd "$(dirname "$0")/.."

bash provisioning/ci/install-build-deps.sh
export CC_x86_64_unknown_linux_musl=musl-gcc
start=$SECONDS
echo "==> cargo build --release --target x86_64-unknown-linux-musl"
cargo build --release --locked --target x86_64-unknown-linux-musl
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/x86_64-unknown-linux-musl/release/torrust-tracker-deployer"

# A static(-pie) binary: ldd says so (and exits 0 for static-pie), file never says "dynamically".
linkage=$(ldd "$bin" 2>&1 || true)
case "$linkage" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) echo "error: $bin is dynamically linked:" >&2; echo "$linkage" >&2; exit 1 ;;
esac
if command -v file >/dev/null 2>&1; then
  desc=$(file -L "$bin")
  case "$desc" in
    *"dynamically linked"*) echo "error: $bin is not static: $desc" >&2; exit 1 ;;
  esac
fi
"$bin" --version
echo "static binary ok: $bin ($(du -h "$bin" | cut -f1), built in $((SECONDS - start)) s)"
