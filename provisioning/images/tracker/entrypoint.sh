#!/bin/sh
# Entrypoint of the bundle's torrust/tracker image. Same contract as the official image's entry
# script (written anew here): create the user `torrust` with uid/gid $USER_ID (>= 1000), create
# /var/lib/torrust/tracker/database, give the three tracker directories to that user (mode 2770),
# install a default configuration when none exists (chosen by
# TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__DRIVER: sqlite3 or mysql), then run the command
# as that user.
set -eu

fail() { echo "entry.sh: ERROR: $*" >&2; exit 1; }

uid=${USER_ID:-}
case "$uid" in
    '' | *[!0-9]*) fail "USER_ID must be a number >= 1000 (got '${uid}')" ;;
esac
[ "$uid" -ge 1000 ] || fail "USER_ID must be >= 1000 (got $uid)"

if [ "$(id -u)" != 0 ]; then
    # Started with --user: nothing to set up, run as given.
    exec "$@"
fi

if ! getent passwd torrust >/dev/null; then
    getent group "$uid" >/dev/null || groupadd --gid "$uid" torrust
    useradd --uid "$uid" --gid "$uid" --home-dir /home/torrust --create-home --shell /bin/sh torrust
fi

mkdir -p /var/lib/torrust/tracker/database /var/log/torrust/tracker /etc/torrust/tracker
# Like the official script, a failure here (a read-only bind mount) is not fatal.
chown -R "$uid:$uid" /var/lib/torrust /var/log/torrust /etc/torrust ||
    echo "entry.sh: warning: could not chown every tracker directory (read-only mount?)" >&2
chmod -R 2770 /var/lib/torrust /var/log/torrust /etc/torrust ||
    echo "entry.sh: warning: could not chmod every tracker directory (read-only mount?)" >&2

driver=$(printf '%s' "${TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__DRIVER:-}" | tr -dc 'a-zA-Z0-9-' | tr 'A-Z' 'a-z')
case "$driver" in
    sqlite3) default_config=/usr/share/torrust/default/config/tracker.container.sqlite3.toml ;;
    mysql) default_config=/usr/share/torrust/default/config/tracker.container.mysql.toml ;;
    '') fail "TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__DRIVER is not set (sqlite3 or mysql)" ;;
    *) fail "unsupported database driver '$driver' (sqlite3 or mysql)" ;;
esac
if [ ! -e /etc/torrust/tracker/tracker.toml ]; then
    install -D -m 0640 -o torrust -g "$uid" "$default_config" /etc/torrust/tracker/tracker.toml
fi

cd /home/torrust
export HOME=/home/torrust USER=torrust LOGNAME=torrust
exec setpriv --reuid="$uid" --regid="$uid" --init-groups -- "$@"
