#!/usr/bin/env bash
# Installs what the OCI pull tests (tests/image_pull.rs) need: Debian's `docker-registry`
# (the CNCF distribution registry, /usr/bin/docker-registry). Idempotent: only what is missing.
# Nothing is started or configured here: each test starts its own registry on a loopback port
# with its own config (no auth) and a temporary storage directory, and stops that process only.
# Debian's stock /etc/docker/registry/config.yml demands htpasswd auth; the tests never use it.
# Needs root.
set -euo pipefail

if ! command -v docker-registry >/dev/null 2>&1; then
  echo "==> apt-get install docker-registry"
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start the system registry (no init system here, but be safe).
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

echo "registry test dependencies: ok ($(docker-registry --version 2>&1 | head -n1))"
