#!/usr/bin/env bash
# The Prometheus alert rules (deploy/prometheus/aurora-alerts.yaml) against a real
# node: starts target/debug/aurora as a clustered founder on loopback (free ports,
# temporary data dir), sends one chat request and one unauthorised admin request so
# the request series exist, saves its /metrics and runs check_alerts.py on it.
# Usage: deploy/ci/check-alerts.sh [path/to/aurora]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/ci/tools.sh
source "$root/deploy/ci/tools.sh"
PROMQL_PARSER_VERSION="0.11.0"
if ! "$CI_PYTHON" -c "import promql_parser" 2>/dev/null ||
    ! "$venv/bin/pip" show promql-parser 2>/dev/null | grep -q "^Version: $PROMQL_PARSER_VERSION\$"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "promql-parser==$PROMQL_PARSER_VERSION"
fi
bin="${1:-$root/target/debug/aurora}"
data="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap cleanup EXIT

gossip="$("$CI_PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sync="$("$CI_PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
secret="$("$CI_PYTHON" -c 'import secrets; print(secrets.token_hex(32))')"
: >"$data/aurora.log"
AURORA_ADMIN_TOKEN=alerts-check-admin-token-0123456789 CLUSTER_SECRET="$secret" RUST_LOG=info \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data/node" --log-format json --auth open \
    --cluster-enabled true --cluster-node-id alerts-1 --cluster-bind-addr 127.0.0.1 \
    --cluster-bind-port "$gossip" --cluster-sync-bind-port "$sync" 2>"$data/aurora.log" &
pid=$!
addr=""
for _ in $(seq 1 400); do
    addr="$(sed -n 's/.*"message":"listening","addr":"\([0-9.:]*\)".*/\1/p' "$data/aurora.log" | head -n 1 || true)"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$addr" ]; then
    echo "FAIL: aurora did not start; its log:" >&2
    cat "$data/aurora.log" >&2
    exit 1
fi
"$CI_PYTHON" - "$addr" "$data/metrics.txt" <<'PY'
import json, sys, urllib.error, urllib.request
base = "http://" + sys.argv[1]
chat = json.dumps({"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", chat, {"content-type": "application/json"}), timeout=10).read()
try:
    urllib.request.urlopen(urllib.request.Request(base + "/admin/api/keys", headers={"authorization": "Bearer wrong"}), timeout=10)
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
open(sys.argv[2], "w").write(urllib.request.urlopen(base + "/metrics", timeout=10).read().decode())
PY
"$CI_PYTHON" "$root/deploy/ci/check_alerts.py" "$root/deploy/prometheus/aurora-alerts.yaml" "$data/metrics.txt"
