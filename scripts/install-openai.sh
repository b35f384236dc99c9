#!/usr/bin/env bash
# Installs the official `openai` Python package (PyPI, pinned) into the project's
# virtualenv ($AGORA_VENV, default /opt/agora-venv, the one scripts/fuzz-api.sh
# uses; created on first use, needs Debian's python3-venv) and prints the line
#   AGORA_TEST_PYTHON=<venv>/bin/python
# for the LLM proxy's real-client test (crates/server/tests/it/llm/openai.rs):
#   eval "export $(scripts/install-openai.sh)"
# A no-op when that version is already there. Progress goes to stderr.
set -euo pipefail

OPENAI_VERSION=3.57.0
venv="${AGORA_VENV:-/opt/agora-venv}"

if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
  echo "== installing openai $OPENAI_VERSION into $venv" >&2
  python="${AGORA_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
  if [ ! -x "$venv/bin/pip" ] && ! "$python" -m venv "$venv" >&2; then
    echo "install-openai: cannot create a virtualenv at $venv; install python3-venv" >&2
    exit 1
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" >&2
fi
echo "AGORA_TEST_PYTHON=$venv/bin/python"
