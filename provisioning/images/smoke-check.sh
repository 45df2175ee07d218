#!/usr/bin/env bash
# smoke-check.sh - run each image of the offline bundle briefly and check its contract.
#
# Runs INSIDE the bundle builder (any machine with a Docker engine and the five images loaded);
# build-offline-bundle.sh pushes it there and runs it after building (and for --check). Needs
# docker, curl and the images tagged as in the bundle. Exits non-zero on the first failed check.
# Everything it creates is named torrust-bundle-check-* and removed again.
set -euo pipefail

TRACKER=${TRACKER_IMAGE:-torrust/tracker:3.0.0}
MYSQL=${MYSQL_IMAGE:-mysql:8.4}
PROMETHEUS=${PROMETHEUS_IMAGE:-prom/prometheus:v3.11.2}
GRAFANA=${GRAFANA_IMAGE:-grafana/grafana:13.0.0}
CADDY=${CADDY_IMAGE:-caddy:2.11.2}

P=torrust-bundle-check
NET=$P-net
START=$SECONDS
PASSED=0

say() { printf '[smoke-check +%3ss] %s\n' "$((SECONDS - START))" "$*"; }
pass() { PASSED=$((PASSED + 1)); say "PASS $*"; }
fail() {
    say "FAIL $*" >&2
    for c in $(docker ps -a --filter "name=^$P-" --format '{{.Names}}'); do
        echo "---- docker logs $c (last 30 lines)" >&2
        docker logs --tail 30 "$c" >&2 2>&1 || true
    done
    exit 1
}

cleanup() {
    local ids
    ids=$(docker ps -aq --filter "name=^$P-") || true
    [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf /tmp/$P
}
trap cleanup EXIT
cleanup

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    fail "$what: not within $secs s"
}
# process_uid CONTAINER: the real uid of the container's main process, seen from this host
process_uid() {
    local pid
    pid=$(docker inspect -f '{{.State.Pid}}' "$1")
    awk '/^Uid:/ {print $2}' "/proc/$pid/status"
}
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }
is_healthy() { [ "$(health "$1")" = healthy ]; }
ip_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"; }
expect_eq() { # WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}
expect_contains() { # WHAT HAYSTACK NEEDLE
    case "$2" in *"$3"*) ;; *) fail "$1: '$2' does not contain '$3'" ;; esac
}

for img in "$TRACKER" "$MYSQL" "$PROMETHEUS" "$GRAFANA" "$CADDY"; do
    docker image inspect "$img" >/dev/null 2>&1 || fail "image $img is not present"
done
docker network create "$NET" >/dev/null
mkdir -p /tmp/$P

# ---------------------------------------------------------------------------------------------
say "tracker ($TRACKER): image contract"
env_of() { docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1"; }
tenv=$(env_of "$TRACKER")
for kv in TORRUST_TRACKER_CONFIG_TOML_PATH=/etc/torrust/tracker/tracker.toml USER_ID=1000 HEALTH_CHECK_API_PORT=1313; do
    grep -qx "$kv" <<<"$tenv" || fail "tracker: env $kv missing"
done
expect_eq "tracker: exposed ports" "$(docker image inspect -f '{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}' "$TRACKER")" \
    "1212/tcp 1313/tcp 6969/udp 7070/tcp "
expect_eq "tracker: volumes" "$(docker image inspect -f '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}' "$TRACKER")" \
    "/etc/torrust/tracker /var/lib/torrust/tracker /var/log/torrust/tracker "
expect_eq "tracker: cmd" "$(docker image inspect -f '{{json .Config.Cmd}}' "$TRACKER")" '["/usr/bin/torrust-tracker"]'
expect_contains "tracker: healthcheck" "$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$TRACKER")" \
    '/usr/bin/http_health_check http://localhost:${HEALTH_CHECK_API_PORT}/health_check'
pass "tracker: env, ports, volumes, CMD, HEALTHCHECK as the official image"

say "tracker: start with no configuration (entrypoint installs the sqlite3 default)"
docker run -d --name $P-tracker-default "$TRACKER" >/dev/null
wait_for 40 "tracker (default config) healthy" is_healthy $P-tracker-default
out=$(docker exec $P-tracker-default /usr/bin/http_health_check http://localhost:1313/health_check | tr '\n' ' ') ||
    fail "tracker: http_health_check failed: $out"
expect_eq "tracker: uid of the tracker process" "$(process_uid $P-tracker-default)" 1000
expect_eq "tracker: owner of the database dir" \
    "$(docker exec $P-tracker-default stat -c %u:%g /var/lib/torrust/tracker/database)" 1000:1000
docker exec $P-tracker-default test -s /etc/torrust/tracker/tracker.toml || fail "tracker: no default tracker.toml installed"
pass "tracker (default sqlite3 config): HEALTHCHECK healthy, http_health_check '$out', runs as uid 1000"

say "mysql ($MYSQL, MariaDB stand-in): first start with MYSQL_* variables"
ROOTPW="root's secret"  # a quote and a space: the entrypoint must quote it in SQL
docker run -d --name $P-mysql --network "$NET" --network-alias mysql \
    -e MYSQL_ROOT_PASSWORD="$ROOTPW" -e MYSQL_DATABASE=torrust_tracker \
    -e MYSQL_USER=db_user -e MYSQL_PASSWORD=db_user_secret_password "$MYSQL" >/dev/null
# mysqladmin ping also answers "alive" during the init phase; wait for a real TCP login instead.
wait_for 90 "mysql: root login over TCP" \
    docker exec $P-mysql mysql -h127.0.0.1 -uroot "-p$ROOTPW" -e 'SELECT 1'
out=$(docker exec $P-mysql mysqladmin -uroot "-p$ROOTPW" ping) || fail "mysql: mysqladmin ping: $out"
expect_eq "mysql: mysqladmin ping" "$out" "mysqld is alive"
expect_eq "mysql: uid of the server process" "$(process_uid $P-mysql)" 999
expect_eq "mysql: owner of /var/lib/mysql" "$(docker exec $P-mysql stat -c %u:%g /var/lib/mysql)" 999:999
out=$(docker run --rm --network "$NET" --entrypoint mysql "$MYSQL" \
    -h mysql -udb_user -pdb_user_secret_password torrust_tracker -N -e 'SELECT DATABASE(), CURRENT_USER()') ||
    fail "mysql: login as db_user from another container failed: $out"
expect_eq "mysql: login as MYSQL_USER to MYSQL_DATABASE" "$(tr '\t' ' ' <<<"$out")" "torrust_tracker db_user@%"
if docker run --rm --network "$NET" --entrypoint mysql "$MYSQL" -h mysql -uroot -pwrong -e 'SELECT 1' >/dev/null 2>&1; then
    fail "mysql: root login with a wrong password succeeded"
fi
pass "mysql: 'mysqladmin ping' alive, db_user@% logs in to torrust_tracker over 3306 from another container, uid 999, datadir 999"

say "tracker + mysql: the real tracker with the mysql driver, all services enabled"
cat >/tmp/$P/tracker.toml <<'EOF'
[metadata]
app = "torrust-tracker"
purpose = "configuration"
schema_version = "2.0.0"

[logging]
threshold = "info"

[core]
listed = false
private = false

[core.database]
driver = "mysql"
path = "mysql://db_user:db_user_secret_password@mysql:3306/torrust_tracker"

[[udp_trackers]]
bind_address = "0.0.0.0:6969"

[[http_trackers]]
bind_address = "0.0.0.0:7070"

[http_api]
bind_address = "0.0.0.0:1212"

[http_api.access_tokens]
admin = "SmokeCheckToken"
EOF
docker run -d --name $P-tracker --network "$NET" \
    -e TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__DRIVER=mysql \
    -v /tmp/$P/tracker.toml:/etc/torrust/tracker/tracker.toml "$TRACKER" >/dev/null
wait_for 40 "tracker (mysql) healthy" is_healthy $P-tracker
tip=$(ip_of $P-tracker)
out=$(curl -fsS "http://$tip:7070/health_check") || fail "tracker: HTTP tracker /health_check: $out"
expect_contains "tracker: HTTP tracker /health_check" "$out" '"Ok"'
out=$(curl -fsS "http://$tip:1212/api/health_check") || fail "tracker: API /api/health_check: $out"
expect_contains "tracker: API /api/health_check" "$out" '"Ok"'
out=$(curl -fsS "http://$tip:1212/api/v1/stats?token=SmokeCheckToken") || fail "tracker: API stats: $out"
expect_contains "tracker: API stats" "$out" '"torrents"'
out=$(docker exec $P-tracker /usr/bin/http_health_check http://localhost:1313/health_check) ||
    fail "tracker: http_health_check (all services): $out"
tables=$(docker exec $P-mysql mysql -uroot "-p$ROOTPW" -N -e 'SHOW TABLES' torrust_tracker | sort | tr '\n' ' ')
for t in keys torrents whitelist; do expect_contains "tracker: tables in mysql" "$tables" "$t"; done
pass "tracker with mysql: healthy; HTTP :7070 and API :1212 answer; tables created in MariaDB: $tables"

# The backup job runs on the host and dumps MySQL inside the mysql container, with the root
# password from the container's environment (MYSQL_PWD), never on a command line (ADR 21, 33).
say "mysql: mysqldump as the backup job runs it"
out=$(docker exec $P-mysql sh -c \
    'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysqldump -uroot --single-transaction --routines --triggers --events --no-tablespaces --databases "$MYSQL_DATABASE"' | gzip -c | gzip -dc | grep -c 'CREATE TABLE') ||
    fail "mysql: mysqldump of torrust_tracker failed: $out"
[ "$out" -ge 3 ] || fail "mysql: mysqldump shows $out CREATE TABLE statements, want >= 3"
pass "mysql: mysqldump (MYSQL_PWD from the container's environment) of the tracker database through gzip ($out tables)"

# ---------------------------------------------------------------------------------------------
say "prometheus ($PROMETHEUS, Debian prometheus stand-in)"
expect_eq "prometheus: entrypoint" "$(docker image inspect -f '{{json .Config.Entrypoint}}' "$PROMETHEUS")" '["/bin/prometheus"]'
expect_eq "prometheus: cmd" "$(docker image inspect -f '{{json .Config.Cmd}}' "$PROMETHEUS")" \
    '["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"]'
docker run -d --name $P-prometheus "$PROMETHEUS" >/dev/null
wait_for 40 "prometheus /-/healthy" docker exec $P-prometheus wget -qO- http://localhost:9090/-/healthy
out=$(docker exec $P-prometheus wget -qO- http://localhost:9090/-/healthy)
expect_contains "prometheus: /-/healthy" "$out" "Healthy"
expect_eq "prometheus: uid" "$(process_uid $P-prometheus)" 65534
out=$(docker exec $P-prometheus /bin/prometheus --version 2>&1 | head -n1)
pass "prometheus: '/-/healthy' via wget in the container, uid 65534 ($out)"

say "grafana ($GRAFANA, stub)"
docker run -d --name $P-grafana "$GRAFANA" >/dev/null
wait_for 20 "grafana /api/health" docker exec $P-grafana wget -qO- http://localhost:3000/api/health
out=$(docker exec $P-grafana wget -qO- http://localhost:3000/api/health)
expect_contains "grafana: /api/health" "$out" '"database":"ok"'
expect_eq "grafana: uid" "$(process_uid $P-grafana)" 472
pass "grafana stub: /api/health = $out, uid 472"

say "caddy ($CADDY, Debian caddy stand-in)"
out=$(docker run --rm "$CADDY" caddy version) || fail "caddy: caddy version: $out"
docker run -d --name $P-caddy "$CADDY" >/dev/null
wait_for 20 "caddy serves :80" docker exec $P-caddy wget -qO- http://localhost:80/
expect_contains "caddy: default site" "$(docker exec $P-caddy wget -qO- http://localhost:80/)" "Caddy"
docker exec $P-caddy test -d /data/caddy || fail "caddy: /data/caddy missing"
pass "caddy: 'caddy version' = $out; the default Caddyfile serves :80"

say "all $PASSED checks passed in $((SECONDS - START)) s"
