#!/usr/bin/env bash
# Install Debian's chromium for the UI check (tests/deployments/test_workers.py), if missing.
set -euo pipefail
command -v chromium >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
chromium --version
