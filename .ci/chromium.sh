#!/usr/bin/env bash
# Install Debian's chromium for the UI check (tests/deployments/test_workers.py) and tmux for the
# terminal check (tests/deployments/test_live_served.py), if missing.
set -euo pipefail
command -v chromium >/dev/null && command -v tmux >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium tmux >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium tmux >/dev/null; }
chromium --version
tmux -V
