#!/usr/bin/env bash
# Start a throwaway PostgreSQL on loopback for the tests (Debian's postgresql package).
# Prints the SQLAlchemy URL on its last line. Usage: url=$(bash .ci/postgres.sh)
set -euo pipefail
port=${TIERFLOW_TEST_POSTGRES_PORT:-54329}
# A port already taken (another PostgreSQL left running) moves us to the next free one.
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/tierflow-pg.XXXXXX)
chown postgres "$data"
runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres --encoding=UTF8 --locale=C.UTF-8 >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off" start >&2
runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" tierflow_test
echo "postgresql+psycopg://postgres@127.0.0.1:$port/tierflow_test"
