#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the store contract tests and prints the
# admin URL the tests take from AGORA_TEST_POSTGRES_URL. Debian's postgresql package
# provides the binaries; run as root (CI) or as a user that can run initdb.
#
#   eval "$(scripts/start-postgres.sh)"     # exports AGORA_TEST_POSTGRES_URL
set -euo pipefail

PORT="${AGORA_PG_PORT:-55432}"
DIR="${AGORA_PG_DIR:-/tmp/agora-test-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "PostgreSQL server binaries not found: apt-get install -y postgresql" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR" -A trust -U postgres >/dev/null
  # Tests create a database each; fsync off because the server is thrown away.
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
fi
echo "export AGORA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
