#!/usr/bin/env bash
# Runs every test of the workspace. Starts a throwaway PostgreSQL (Debian's
# postgresql package) when one is installed so the store contract suite runs on
# both backends; without it the PostgreSQL half skips, unless AGORA_REQUIRE_POSTGRES
# is set, in which case it fails. Docker tests likewise skip only when Docker is
# absent and AGORA_REQUIRE_DOCKER is unset.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${AGORA_TEST_POSTGRES_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  eval "$(scripts/start-postgres.sh)"
fi

cargo nextest run --workspace --no-fail-fast "$@"
