#!/usr/bin/env bash
# The project's test suite: the test command the README shows, and the one `.ci/run` calls.
# Installs and starts what the tests need (idempotent; slow parts are cached under
# /var/cache/torrust-deployer and rebuilt from scratch when missing), then runs cargo's tests.
#
#   provisioning/test.sh             everything except the tests that need LXD
#   provisioning/test.sh --with-lxd  everything, the LXD and end-to-end tests included
#
# The LXD tests (tests/lxd_*.rs: provision, configure, deploy end to end) are not in the default
# run because LXD 5.0.2 on this machine kind intermittently fails the first start of a new
# container for minutes at a time (see docs/decisions/0007); a CI gate on them would block every
# change for a reason outside this code. Run them with --with-lxd (or provisioning/test-lxd.sh).
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

ignored=()
if [[ ${1:-} == --with-lxd ]]; then
  say "LXD host and test images"
  bash provisioning/ci/install-lxd-test-deps.sh
  say "offline image bundle (cached by inputs)"
  TORRUST_TEST_BUNDLE=$(bash provisioning/images/build-offline-bundle.sh | tail -n1)
  export TORRUST_TEST_BUNDLE
  say "bundle: $TORRUST_TEST_BUNDLE"
  ignored=(--include-ignored)
fi

# Doc tests first (--all-targets does not run them), so that the last summary is the main run's.
cargo test --locked --doc
say "cargo test (all targets${ignored:+, LXD and end-to-end included})"
cargo test --locked --no-fail-fast --all-targets -- "${ignored[@]}"
