#!/usr/bin/env bash
# Makes this machine an LXD host with the images the LXD tests use: LXD started without systemd
# when needed, a `dir` pool and a NAT bridge, and two Debian 12 images built offline
# (torrust/debian-12 with cloud-init, torrust/debian-12-nocloud without). Idempotent; the .debs
# and image tarballs are cached under /var/cache/torrust-deployer.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash provisioning/host/prepare-lxd-host.sh
bash provisioning/image/build-debian-image.sh
bash provisioning/image/build-debian-image.sh --no-cloud-init
