#!/bin/sh
# Installed as /usr/sbin/policy-rc.d in the bundle's Debian base image: packages never start
# services while an image is built (there is no init in a container build step).
exit 101
