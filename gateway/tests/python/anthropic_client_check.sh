#!/usr/bin/env bash
# Runs anthropic_client_check.py with the official `anthropic` client from PyPI
# (pinned), installed into run.sh's venv; run.sh calls this with the server it started.
#
# Usage: gateway/tests/python/anthropic_client_check.sh VENV BASE_URL
set -euo pipefail

ANTHROPIC_VERSION="2.10.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$1"
base="$2"

if ! "$venv/bin/python" -c "import anthropic, sys; sys.exit(anthropic.__version__ != '$ANTHROPIC_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "anthropic==$ANTHROPIC_VERSION"
fi
"$venv/bin/python" "$here/anthropic_client_check.py" "$base"
