#!/usr/bin/env bash
# Installs what building the static (musl) binary needs: Debian's musl-tools and the Rust
# x86_64-unknown-linux-musl target; and tmux, in which tests/cli_progress.rs runs the binary
# on a real terminal to capture its live progress display. Idempotent: installs only what is
# missing.
set -euo pipefail

need_apt=()
command -v musl-gcc >/dev/null 2>&1 || need_apt+=(musl-tools)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
if ((${#need_apt[@]})); then
  echo "==> apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "==> rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi
echo "build dependencies: ok (musl-gcc: $(command -v musl-gcc), tmux: $(command -v tmux))"
