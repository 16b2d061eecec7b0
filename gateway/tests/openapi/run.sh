#!/usr/bin/env bash
# Runs schemathesis (pinned, in a venv under target/) against a freshly started
# `aurora` with docs/openapi.yaml, and fails on any failure of the checks:
#   not_a_server_error           no 5xx (every 5xx the gateway answers is a bug or a
#                                documented upstream/node state; a fresh node has none)
#   status_code_conformance      every status is one the spec lists for the operation
#   response_schema_conformance  every JSON body matches the spec's schema
#   content_type_conformance     every answer has a media type the spec lists
# The node runs on a free loopback port with a temporary data dir and an admin token;
# a client key is created first so the client endpoints are tried with a real key.
# Bounded: at most AURORA_ST_MAX_EXAMPLES (default 25) cases per operation and phase,
# and a hard time limit of AURORA_ST_TIMEOUT seconds (default 170) for the whole run.
# The seed is fixed (AURORA_ST_SEED) so a failure replays.
#
# Usage: gateway/tests/openapi/run.sh [path/to/aurora]   (default: target/debug/aurora,
# built with `cargo build -p aurora-gateway` if missing)
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
VALIDATOR_VERSION="0.7.2"    # openapi-spec-validator: the spec itself is valid OpenAPI 3.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${1:-$root/target/debug/aurora}"
spec="$root/docs/openapi.yaml"
venv="${AURORA_ST_VENV:-${CARGO_TARGET_DIR:-$root/target}/py-schemathesis}"
max_examples="${AURORA_ST_MAX_EXAMPLES:-25}"
time_limit="${AURORA_ST_TIMEOUT:-170}"
seed="${AURORA_ST_SEED:-14}"

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
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '$VALIDATOR_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION"
fi
if ! "$venv/bin/python" - "$spec" <<'PY'
import sys
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
spec, _ = read_from_filename(sys.argv[1])
validate(spec)
print(f"openapi check: {sys.argv[1]} is valid OpenAPI {spec['openapi']}")
PY
then
    echo "FAIL openapi check: docs/openapi.yaml is not a valid OpenAPI document"
    exit 1
fi

data="$(mktemp -d)"
log="$data/aurora.log"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap cleanup EXIT

export AURORA_ST_ADMIN_TOKEN="openapi-check-admin-token-0123456789"
# Port 0: the kernel picks a free port; the server logs the one it got.
AURORA_ADMIN_TOKEN="$AURORA_ST_ADMIN_TOKEN" RUST_LOG=info \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data/node" --log-format json 2>"$log" &
pid=$!
addr=""
for _ in $(seq 1 200); do
    addr="$(sed -n 's/.*"message":"listening","addr":"\([0-9.:]*\)".*/\1/p' "$log" | head -n 1)"
    [ -n "$addr" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
done
if [ -z "$addr" ]; then
    echo "FAIL openapi check: aurora did not start; its log:"
    cat "$log"
    exit 1
fi
base="http://$addr"

# A client key for the client endpoints.
setup="$("$venv/bin/python" - "$base" <<'PY'
import json, os, sys, urllib.request, urllib.error

base = sys.argv[1]
admin = os.environ["AURORA_ST_ADMIN_TOKEN"]

def call(method, path, body, token):
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")

status, key = call("POST", "/admin/api/keys", {"id": "openapi-check", "name": "openapi check"}, admin)
assert status == 201, (status, key)
print(f"KEY {key['secret']}")
PY
)"
export AURORA_ST_API_KEY="$(sed -n 's/^KEY //p' <<<"$setup")"

cd "$data"
status=0
timeout --kill-after=10 "$time_limit" \
    "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" --no-color run "$spec" \
    --url "$base" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 2 \
    --request-timeout 20 \
    --generation-database none \
    --suppress-health-check all \
    --generation-with-security-parameters false || status=$?
if [ "$status" -ne 0 ]; then
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "FAIL openapi check: schemathesis did not finish within ${time_limit}s"
    else
        echo "FAIL openapi check: schemathesis exited $status (failures above); aurora log:"
    fi
    tail -n 50 "$log"
    exit 1
fi
if grep -q '"level":"ERROR"' "$log"; then
    echo "FAIL openapi check: the node logged errors:"
    grep '"level":"ERROR"' "$log" | head -n 20
    exit 1
fi
echo "PASS openapi check: schemathesis $SCHEMATHESIS_VERSION, 0 failures against $base"
