#!/usr/bin/env bash
# Runs every test of the workspace. Starts a throwaway PostgreSQL (Debian's
# postgresql package) when one is installed so the store contract suite runs on
# both backends; without it the PostgreSQL half skips, unless AGORA_REQUIRE_POSTGRES
# is set, in which case it fails. Docker tests likewise skip only when Docker is
# absent and AGORA_REQUIRE_DOCKER is unset; with Docker present the agent runtime
# image is built first (offline from Debian packages: needs mmdebstrap). A full run
# (no arguments) then fuzzes the System Service against its own OpenAPI document
# (scripts/fuzz-api.sh: schemathesis from PyPI in a virtualenv, needs python3-venv).
# The `openai` package goes into the same virtualenv (scripts/install-openai.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${AGORA_TEST_POSTGRES_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  eval "$(scripts/start-postgres.sh)"
fi

# The sandbox tests run agents in the runtime image; build it once up front (a no-op
# when it exists) rather than inside a test's time limit.
if docker info >/dev/null 2>&1; then
  cargo run -q -p agora-cli -- runtime build
fi

# The LLM proxy's real-client test runs the official `openai` Python package from
# the project's virtualenv; without it that test skips, unless AGORA_REQUIRE_OPENAI
# is set.
if [ -z "${AGORA_TEST_PYTHON:-}" ]; then
  if openai_env="$(scripts/install-openai.sh)"; then
    export "$openai_env"
  elif [ -n "${AGORA_REQUIRE_OPENAI:-}" ]; then
    exit 1
  fi
fi

cargo nextest run --workspace --no-fail-fast "$@"
python3 -m unittest discover -s agents/tests -v

if [ $# -eq 0 ]; then
  scripts/fuzz-api.sh
fi
