#!/usr/bin/env bash
# Installs what the SSH-layer tests (tests/ssh_engine.rs) need. Idempotent: only what is missing.
#  - openssh-server (/usr/sbin/sshd; the tests run their own sshd on a loopback port with their own
#    config, host key and authorized_keys; the system sshd is neither started nor configured),
#    openssh-client (ssh-keygen, ssh-agent, ssh-add) and sudo;
#  - the privilege separation directory /run/sshd;
#  - a non-root test user, torrust-ssh-test, with passwordless sudo, for the non-root code path.
#    It has no password and no authorized_keys of its own: only the tests' private sshd (which
#    reads keys from the test's temporary directory) lets it in.
# Needs root.
set -euo pipefail

TEST_USER=torrust-ssh-test

need_apt=()
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-agent >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
if ((${#need_apt[@]})); then
  echo "==> apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing openssh-server must not start the system sshd (no init system here, but be safe).
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

install -d -m 0755 /run/sshd

if ! id -u "$TEST_USER" >/dev/null 2>&1; then
  echo "==> useradd $TEST_USER"
  useradd --create-home --shell /bin/sh "$TEST_USER"
fi
# A locked account ('!' password) may not log in even with a key when PAM is off: use '*'.
if [ "$(getent shadow "$TEST_USER" | cut -d: -f2)" != "*" ]; then
  usermod -p '*' "$TEST_USER"
fi
sudoers=/etc/sudoers.d/$TEST_USER
if [ ! -e "$sudoers" ]; then
  echo "==> $sudoers"
  printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$TEST_USER" >"$sudoers.tmp"
  chmod 0440 "$sudoers.tmp"
  visudo -cf "$sudoers.tmp" >/dev/null
  mv "$sudoers.tmp" "$sudoers"
fi

echo "sshd test dependencies: ok ($(/usr/sbin/sshd -V 2>&1 | head -n1); user $TEST_USER)"
