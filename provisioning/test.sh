#!/usr/bin/env bash
# The project's whole test suite. Installs and starts what the tests need (idempotent), then
# runs cargo's tests. This is the test command the README shows, and `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

for script in provisioning/ci/install-build-deps.sh provisioning/ci/install-sshd-test-deps.sh; do
  [ -e "$script" ] || continue
  bash "$script"
done

# Doc tests first (--all-targets does not run them), so that the last summary is the main run's.
cargo test --locked --doc
cargo test --locked --no-fail-fast --all-targets
