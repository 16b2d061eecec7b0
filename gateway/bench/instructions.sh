#!/usr/bin/env bash
# Instructions per chat request, counted by callgrind: repeatable on a noisy machine
# (the same binary and inputs give nearly the same count whatever else runs).
# Aurora runs under valgrind in front of the nginx mock upstream; counting starts after
# 50 warm-up requests and covers N requests, the writer thread and every other thread
# of the process included.
#
# Usage: gateway/bench/instructions.sh BIN [N=200] [CONNECTIONS=1]
#   CONNECTIONS 1: N sequential requests on one keep-alive connection (python);
#   more: `oha -n N -c CONNECTIONS` (valgrind runs the threads one at a time).
# Prints instructions per request; keeps callgrind's file when CALLGRIND_OUT is set.
# Needs: valgrind, nginx (apt-get install -y valgrind nginx-light), oha for CONNECTIONS > 1.
set -euo pipefail
BIN="$1"; N="${2:-200}"; CONNECTIONS="${3:-1}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=gateway/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v valgrind >/dev/null || { echo "missing: valgrind (apt-get install -y valgrind)"; exit 1; }

start_nginx_mock "$work/nginx"
pids+=("$NGINX_PID")
cat > "$work/aurora.yaml" <<Y
gateway:
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
Y
port="$(free_port)"
out="${CALLGRIND_OUT:-$work/callgrind.out}"
AURORA_ADMIN_TOKEN=bench-admin-token-0123456789abcdef-cg RUST_LOG=warn valgrind --tool=callgrind \
    --instr-atstart=no --callgrind-out-file="$out" "$BIN" serve --listen "127.0.0.1:$port" \
    --data-dir "$work/data" --config "$work/aurora.yaml" 2>"$work/aurora.log" &
vg=$!
pids+=("$vg")
wait_http "http://127.0.0.1:$port/health" 120 || { echo "aurora did not start"; cat "$work/aurora.log"; exit 1; }
BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
sequential() { # count
    python3 - "$port" "$1" "$BODY" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    c.request("POST", "/v1/chat/completions", sys.argv[3], {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status}")
PY
}
sequential 50
callgrind_control -i on "$vg" >/dev/null
if [ "$CONNECTIONS" -le 1 ]; then
    sequential "$N"
else
    oha --no-tui -n "$N" -c "$CONNECTIONS" -m POST -H 'content-type: application/json' -d "$BODY" \
        "http://127.0.0.1:$port/v1/chat/completions" >"$work/oha.txt"
    grep -q "Success rate:.*100.00%" "$work/oha.txt" || { echo "not every request succeeded"; cat "$work/oha.txt"; exit 1; }
fi
callgrind_control -i off "$vg" >/dev/null
callgrind_control -d "$vg" >/dev/null
sleep 1
total="$(grep -h '^totals:' "$out".1 | awk '{print $2}')"
echo "$BIN: $((total / N)) instructions per request ($N requests, $CONNECTIONS connection(s), total $total)"
