#!/usr/bin/env bash
# Installs Debian 12's Compose, docker-compose 1.29.2, from PyPI into a venv outside the repo,
# so tests/stack_compose.rs can validate the generated compose file with `docker-compose config`
# (no Docker engine needed). Idempotent; prints the command's path as its last line.
set -euo pipefail
venv=${COMPOSE_CHECK_VENV:-/var/cache/torrust-deployer/compose-1.29.2}
if ! "$venv/bin/docker-compose" version --short >/dev/null 2>&1; then
  echo "installing docker-compose 1.29.2 into $venv (PyPI) ..." >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  # PyYAML 5.x (required by compose 1.29) has no wheel for new Pythons and its sdist needs an
  # old Cython: build it without isolation against one.
  "$venv/bin/pip" install -q "cython<3" wheel setuptools
  "$venv/bin/pip" install -q --no-build-isolation "pyyaml==5.4.1"
  "$venv/bin/pip" install -q "docker-compose==1.29.2"
fi
"$venv/bin/docker-compose" version --short >&2
echo "$venv/bin/docker-compose"
