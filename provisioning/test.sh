#!/usr/bin/env bash
# The project's whole test suite, end to end included. Installs and starts what the tests need
# (idempotent; slow parts are cached under /var/cache/torrust-deployer and rebuilt from scratch
# when missing), then runs cargo's tests. This is the test command the README shows, and
# `.ci/run` calls it.
#
#   provisioning/test.sh            everything
#   provisioning/test.sh --quick    everything but the tests that need LXD
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
say() { echo "[test.sh +$((SECONDS - start))s] $*"; }

bash provisioning/ci/install-build-deps.sh
bash provisioning/ci/install-sshd-test-deps.sh
TORRUST_TEST_DOCKER_COMPOSE=$(bash provisioning/ci/install-compose-check.sh | tail -n1)
export TORRUST_TEST_DOCKER_COMPOSE

say "the real tracker (cached by version; ~14 min when cold)"
bash provisioning/tracker/build-tracker.sh

if [[ ${1:-} == --quick ]]; then
  cargo test --locked --doc
  cargo test --locked --no-fail-fast --all-targets
  exit
fi
say "LXD host and test images"
bash provisioning/ci/install-lxd-test-deps.sh
say "offline image bundle (cached by inputs)"
TORRUST_TEST_BUNDLE=$(bash provisioning/images/build-offline-bundle.sh | tail -n1)
export TORRUST_TEST_BUNDLE
say "bundle: $TORRUST_TEST_BUNDLE"

# Doc tests first (--all-targets does not run them), so that the last summary is the main run's.
cargo test --locked --doc
# --include-ignored: the LXD and end-to-end tests are ignored in a bare `cargo test` only so that
# it works on a machine without LXD; here everything they need is in place.
say "cargo test (all targets, LXD and end-to-end included)"
cargo test --locked --no-fail-fast --all-targets -- --include-ignored
