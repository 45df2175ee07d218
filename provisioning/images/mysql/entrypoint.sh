#!/bin/bash
# Entrypoint of the bundle's mysql:8.4 stand-in (MariaDB 10.11), written for this project after
# the documented behaviour of the official MySQL image's entrypoint:
#   - arguments starting with '-' are options for mysqld;
#   - started as root: fix the ownership of the data and socket dirs, re-run itself as uid 999;
#   - first start (no /var/lib/mysql/mysql): initialise the data dir, set the root password
#     (MYSQL_ROOT_PASSWORD, or MYSQL_ALLOW_EMPTY_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD), create
#     root@MYSQL_ROOT_HOST (default '%'), MYSQL_DATABASE, MYSQL_USER/MYSQL_PASSWORD with all
#     privileges on MYSQL_DATABASE, run /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz;
#   - every VAR also reads VAR_FILE (Docker secrets);
#   - then exec the server in the foreground.
set -eo pipefail

log() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u +%FT%TZ)" "$*"; }
fail() { printf '%s [ERROR] [Entrypoint]: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; exit 1; }

# file_env VAR [DEFAULT]: VAR from $VAR or the file named by $VAR_FILE (not both).
file_env() {
    local var=$1 fvar="${1}_FILE" def=${2:-} val
    if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then fail "both $var and $fvar are set (they are exclusive)"; fi
    val=$def
    if [ -n "${!var:-}" ]; then val=${!var}
    elif [ -n "${!fvar:-}" ]; then val=$(<"${!fvar}"); fi
    export "$var"="$val"
    unset "$fvar"
}

sql_string() { # quote $1 as an SQL string literal
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\\\'}"
}
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

if [ "${1:0:1}" = '-' ]; then set -- mysqld "$@"; fi

case "$1" in mysqld | mariadbd) ;; *) exec "$@" ;; esac

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$datadir" /run/mysqld
    find "$datadir" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' + 2>/dev/null ||
        log "warning: could not chown $datadir (read-only mount?)"
    exec setpriv --reuid=999 --regid=999 --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -d "$datadir/mysql" ]; then
    file_env MYSQL_ROOT_PASSWORD
    file_env MYSQL_ROOT_HOST '%'
    file_env MYSQL_DATABASE
    file_env MYSQL_USER
    file_env MYSQL_PASSWORD
    file_env MYSQL_ALLOW_EMPTY_PASSWORD
    file_env MYSQL_RANDOM_ROOT_PASSWORD
    if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ] && [ -z "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
        fail "database is uninitialized and password option is not specified
    You need to specify one of the following as an environment variable:
    - MYSQL_ROOT_PASSWORD
    - MYSQL_ALLOW_EMPTY_PASSWORD
    - MYSQL_RANDOM_ROOT_PASSWORD"
    fi
    if [ "$MYSQL_USER" = root ]; then
        fail "MYSQL_USER=\"root\", MYSQL_USER and MYSQL_PASSWORD are for configuring a regular user and cannot be used for the root user"
    fi
    if [ -n "$MYSQL_USER" ] && [ -z "$MYSQL_PASSWORD" ]; then fail "MYSQL_USER is set but MYSQL_PASSWORD is not"; fi
    if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
        MYSQL_ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
        log "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
    fi

    log "Initializing database files (MariaDB stand-in for mysql)"
    mariadb-install-db --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=normal --skip-name-resolve >/dev/null ||
        fail "mariadb-install-db failed"

    log "Starting temporary server"
    "$@" --skip-networking --socket="$socket" &
    pid=$!
    for i in $(seq 1 60); do
        if mysqladmin --socket="$socket" -uroot --silent ping >/dev/null 2>&1; then break; fi
        kill -0 "$pid" 2>/dev/null || fail "temporary server exited during startup"
        sleep 0.5
        [ "$i" = 60 ] && fail "temporary server did not answer within 30 s"
    done
    log "Temporary server started."

    sql=(mariadb --protocol=socket --socket="$socket" -uroot --database=mysql)
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        # mariadb-install-db (normal auth) also makes password-less root@127.0.0.1, root@::1 and
        # root@<hostname>, maybe anonymous users too: the official image has none of them.
        echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', ''@'localhost';"
        echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
        echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS ''''@''', @@hostname, '''');"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$MYSQL_ROOT_PASSWORD");"
        if [ -n "$MYSQL_ROOT_HOST" ] && [ "$MYSQL_ROOT_HOST" != localhost ]; then
            echo "CREATE USER 'root'@$(sql_string "$MYSQL_ROOT_HOST") IDENTIFIED BY $(sql_string "$MYSQL_ROOT_PASSWORD");"
            echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$MYSQL_ROOT_HOST") WITH GRANT OPTION;"
        fi
        if [ -n "$MYSQL_DATABASE" ]; then
            log "Creating database ${MYSQL_DATABASE}" >&2
            echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$MYSQL_DATABASE");"
        fi
        if [ -n "$MYSQL_USER" ]; then
            log "Creating user ${MYSQL_USER}" >&2
            echo "CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
            if [ -n "$MYSQL_DATABASE" ]; then
                log "Giving user ${MYSQL_USER} access to schema ${MYSQL_DATABASE}" >&2
                echo "GRANT ALL ON $(sql_ident "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | "${sql[@]}" || fail "setting up users and databases failed"

    # From here on root needs its password (empty with MYSQL_ALLOW_EMPTY_PASSWORD).
    export MYSQL_PWD=$MYSQL_ROOT_PASSWORD
    for f in /docker-entrypoint-initdb.d/*; do
        # shellcheck disable=SC1090
        case "$f" in
            *.sh) log "running $f"; . "$f" ;;
            *.sql) log "running $f"; "${sql[@]}" --database="${MYSQL_DATABASE:-mysql}" <"$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${sql[@]}" --database="${MYSQL_DATABASE:-mysql}" ;;
            *.sql.xz) log "running $f"; xz -dc "$f" | "${sql[@]}" --database="${MYSQL_DATABASE:-mysql}" ;;
            */\*) ;;
            *) log "ignoring $f" ;;
        esac
    done

    log "Stopping temporary server"
    mysqladmin --socket="$socket" -uroot shutdown || fail "could not stop the temporary server"
    wait "$pid" || true
    unset MYSQL_PWD
    log "Temporary server stopped"
    log "MySQL (MariaDB stand-in) init process done. Ready for start up."
fi

exec "$@"
