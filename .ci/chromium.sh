#!/usr/bin/env bash
# Install, if missing, Debian's tmux for the terminal check (tests/deployments/test_live_served.py)
# and then chromium for the UI check (tests/deployments/test_workers.py). tmux comes first and
# alone (it takes seconds): `$1`, if given, is a file touched once it is there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
install() {
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
}
command -v tmux >/dev/null || install tmux
tmux -V
[ -n "${1:-}" ] && touch "$1"
command -v chromium >/dev/null || install chromium
chromium --version
