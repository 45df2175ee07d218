#!/bin/sh
# Entrypoint of the bundle's grafana/grafana STUB: serve the static stub in the foreground on
# :3000 (GF_SERVER_HTTP_PORT is honoured). Arguments are ignored, as this is not Grafana.
set -eu
port=${GF_SERVER_HTTP_PORT:-3000}
echo "grafana stand-in stub (busybox httpd, NOT Grafana): listening on :$port, GET /api/health"
exec busybox httpd -f -v -p "$port" -h /usr/share/grafana/public-stub
