#!/usr/bin/env bash
# Runs openai_client_check.py against a freshly started `aurora`, the way a new user
# would: official `openai` client from PyPI (pinned) in a venv, server on a free
# loopback port with a temporary data dir, killed afterwards whatever happens.
#
# Usage: gateway/tests/python/run.sh [path/to/aurora]   (default: target/debug/aurora,
# built with `cargo build -p aurora-gateway` if missing)
set -euo pipefail

OPENAI_VERSION="3.54.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${1:-$root/target/debug/aurora}"
venv="${AURORA_PY_VENV:-$root/target/py-openai-check}"

if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build -p aurora-gateway --bin aurora)
fi

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "python3-venv missing; installing it"
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y python3-venv
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi

data="$(mktemp -d)"
log="$data/aurora.log"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap cleanup EXIT

# Port 0: the kernel picks a free port; the server logs the one it got.
AURORA_ADMIN_TOKEN=python-check-admin-token-0123456789 RUST_LOG=info \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format json 2>"$log" &
pid=$!
addr=""
for _ in $(seq 1 200); do
    addr="$(sed -n 's/.*"message":"listening","addr":"\([0-9.:]*\)".*/\1/p' "$log" | head -n 1)"
    [ -n "$addr" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
done
if [ -z "$addr" ]; then
    echo "FAIL openai client check: aurora did not start; its log:"
    cat "$log"
    exit 1
fi

for check in openai_client_check.py openai_tools_check.py responses_client_check.py \
    openai_embeddings_completions_check.py; do
    "$venv/bin/python" "$here/$check" "http://$addr" || { echo "aurora log:"; cat "$log"; exit 1; }
done
"$here/anthropic_client_check.sh" "$venv" "http://$addr" || { echo "aurora log:"; cat "$log"; exit 1; }
