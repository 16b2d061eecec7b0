#!/usr/bin/env bash
# Runs openai_client_check.mjs against a freshly started `aurora`, the way a new user
# would: the official `openai` Node client from npm (pinned in package.json and
# package-lock.json, installed with `npm ci` into target/, not into the repo), server on
# a free loopback port with a temporary data dir, killed afterwards whatever happens.
#
# Usage: gateway/tests/node/run.sh [path/to/aurora]   (default: target/debug/aurora,
# built with `cargo build -p aurora-gateway` if missing)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${1:-$root/target/debug/aurora}"
work="${AURORA_NODE_CHECK_DIR:-${CARGO_TARGET_DIR:-$root/target}/node-openai-check}"

if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build -p aurora-gateway --bin aurora)
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "node/npm missing; installing them"
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nodejs npm
fi

mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/openai_client_check.mjs" "$work/"
if ! cmp -s "$here/package-lock.json" "$work/node_modules/.package-lock.json.installed" 2>/dev/null; then
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$work/node_modules/.package-lock.json.installed"
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
AURORA_ADMIN_TOKEN=node-check-admin-token-0123456789 RUST_LOG=info \
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
    echo "FAIL openai node client check: aurora did not start; its log:"
    cat "$log"
    exit 1
fi

if ! node "$work/openai_client_check.mjs" "http://$addr"; then
    echo "aurora log:"
    cat "$log"
    exit 1
fi
