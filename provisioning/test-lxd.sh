#!/usr/bin/env bash
# The LXD integration tests (provision, destroy, register, check, image import against the real
# LXD of this machine). Installs and starts LXD and builds the test images first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash provisioning/ci/install-lxd-test-deps.sh
cargo test --locked --test lxd_provision -- --ignored
