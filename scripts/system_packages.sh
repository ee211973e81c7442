#!/usr/bin/env bash
# The one system package the tests need beyond Python: Debian's chromium, which Playwright drives
# for the browser tests (the review app, the evidence pages) and `python -m review bench --browser`.
# `playwright install` cannot download a browser here, so the distribution's build is used.
# Installs it only when /usr/bin/chromium is missing; needs root or sudo (apt-get).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing Debian's chromium for the browser tests (apt-get install chromium)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
