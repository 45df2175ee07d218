#!/usr/bin/env bash
# The project's test suite: the test command the README shows, and the one `.ci/run` calls.
# Installs and starts what the tests need (idempotent; slow parts are cached under
# /var/cache/torrust-deployer and rebuilt from scratch when missing), then runs cargo's tests.
#
#   provisioning/test.sh                everything: unit, CLI, SSH, tracker, LXD and end-to-end tests
#   provisioning/test.sh --without-lxd  everything except the tests that need LXD (tests/lxd_*.rs),
#                                       for a machine that cannot run LXD
#
# The LXD tests are `#[ignore]`d in a plain `cargo test` (they need the LXD host, the images and
# the offline bundle this script prepares); this script runs them afterwards, one module at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  "" | --with-lxd) with_lxd=1 ;;
  --without-lxd) with_lxd=0 ;;
  *) echo "usage: provisioning/test.sh [--without-lxd]" >&2; exit 2 ;;
esac

start=$SECONDS
say() { echo "[test.sh +$((SECONDS - start))s] $*"; }
# Where LXD is a snap (Ubuntu, GitHub's runners), its `lxc` and `lxd` commands are there.
if [[ -d /snap/bin && ":$PATH:" != *":/snap/bin:"* ]]; then PATH=$PATH:/snap/bin; fi

bash provisioning/ci/install-build-deps.sh
bash provisioning/ci/install-sshd-test-deps.sh
bash provisioning/ci/install-registry-test-deps.sh
TORRUST_TEST_DOCKER_COMPOSE=$(bash provisioning/ci/install-compose-check.sh | tail -n1)
export TORRUST_TEST_DOCKER_COMPOSE

say "the real tracker (cached by version; ~14 min when cold)"
bash provisioning/tracker/build-tracker.sh

if [[ $with_lxd == 1 ]]; then
  say "LXD host and test images"
  bash provisioning/ci/install-lxd-test-deps.sh
  say "offline image bundle (cached by inputs)"
  TORRUST_TEST_BUNDLE=$(bash provisioning/images/build-offline-bundle.sh | tail -n1)
  export TORRUST_TEST_BUNDLE
  say "bundle: $TORRUST_TEST_BUNDLE"
  say ".deb directory for the host without egress (cached)"
  TORRUST_TEST_DEBS=$(bash provisioning/offline/build-deb-dir.sh | tail -n1)
  export TORRUST_TEST_DEBS
fi

# Doc tests first (--all-targets does not run them). Then the unit tests and the one integration
# test binary (tests/main.rs), all at once; the LXD modules are #[ignore]d there.
cargo test --locked --doc
say "cargo test (all targets; the LXD tests after)"
failed=0
cargo test --locked --no-fail-fast --all-targets || failed=1
if [[ $with_lxd == 1 ]]; then
  # One LXD module at a time, as separate runs: their tests share one LXD daemon and two cores,
  # and a deploy next to eleven provisions would measure the machine, not the code.
  for module in lxd_configure lxd_e2e lxd_hetzner lxd_airgap lxd_history lxd_backup lxd_provision lxd_remote; do
    say "cargo test: $module (LXD)"
    cargo test --locked --no-fail-fast --test integration -- --ignored "$module::" || failed=1
  done
fi
if [[ $failed != 0 ]]; then
  say "FAILED: see the test summaries above"
  exit 101
fi
say "all tests passed"
