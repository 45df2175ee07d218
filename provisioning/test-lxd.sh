#!/usr/bin/env bash
# Only the LXD and end-to-end tests (provision, configure, deploy against the real LXD of this
# machine), with what they need prepared first. provisioning/test.sh runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash provisioning/tracker/build-tracker.sh
bash provisioning/ci/install-lxd-test-deps.sh
TORRUST_TEST_BUNDLE=$(bash provisioning/images/build-offline-bundle.sh | tail -n1)
export TORRUST_TEST_BUNDLE
cargo test --locked --test integration -- --ignored lxd_ --test-threads 1
