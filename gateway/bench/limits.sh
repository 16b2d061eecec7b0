#!/usr/bin/env bash
# Instructions per chat request with a budget's request limit on and off, counted by
# callgrind (repeatable on a noisy machine, see instructions.sh): what quota leases
# (docs/quota.md) and the counters cost on the request path.
#
# Aurora runs under valgrind as a one-node cluster in active_active (it elects itself,
# so quota leases are on), in front of the nginx mock upstream; every request carries
# an API key. The arm says what the key's budget is:
#   none      the key has no budget (limits off);
#   leases    a budget with max_requests 10^12, admitted by quota leases;
#   counters  the same budget with gateway.budgets.request_leases: false;
#   rpm       no budget, a key rpm_limit of 2*10^9 admitted by quota leases;
#   rpm_local the same rpm_limit in this node's token bucket (request_leases: false);
#   spend     the leases arm's budget with a spend limit of 10^6 USD as well (both by
#             quota leases): the budget arm of limits_cpu.sh;
#   all       the spend arm's budget and the rpm arm's rpm_limit on one key.
# Counting starts after 50 warm-up requests and covers N sequential requests on one
# keep-alive connection, every thread of the process included.
#
# Usage: gateway/bench/limits.sh BIN [N=1000] [ARM=leases]
# Needs: valgrind, nginx (apt-get install -y valgrind nginx-light).
set -euo pipefail
BIN="$1"; N="${2:-1000}"; ARM="${3:-leases}"
case "$ARM" in none|leases|counters|rpm|rpm_local|spend|all) ;; *) echo "ARM must be none, leases, counters, rpm, rpm_local, spend or all"; exit 2 ;; esac
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
leases=true
case "$ARM" in counters|rpm_local) leases=false ;; esac
cat > "$work/aurora.yaml" <<Y
gateway:
  budgets:
    request_leases: $leases
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
Y
port="$(free_port)"; gossip="$(free_port)"; sync="$(free_port)"
token=bench-admin-token-0123456789abcdef-cg
out="${CALLGRIND_OUT:-$work/callgrind.out}"
CLUSTER_SECRET=a-bench-cluster-secret-of-32-bytes AURORA_ADMIN_TOKEN="$token" RUST_LOG=warn \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$BIN" serve \
    --listen "127.0.0.1:$port" --data-dir "$work/data" --config "$work/aurora.yaml" \
    --cluster-enabled true --cluster-node-id bench --cluster-bind-addr 127.0.0.1 \
    --cluster-bind-port "$gossip" --cluster-sync-bind-port "$sync" \
    --cluster-seed-nodes "127.0.0.1:$gossip" --cluster-advertise-url "http://127.0.0.1:$port" \
    --cluster-failover-mode active_active 2>"$work/aurora.log" &
vg=$!
pids+=("$vg")
wait_http "http://127.0.0.1:$port/health" 180 || { echo "aurora did not start"; cat "$work/aurora.log"; exit 1; }
admin() { # method path [body]
    curl -sf -X "$1" -H "authorization: Bearer $token" "http://127.0.0.1:$port$2" ${3:+-d "$3"}
}
for _ in $(seq 1 120); do
    # Read whole before grep: `grep -q` stops early, and under pipefail the writer's
    # SIGPIPE would fail the test at random.
    status="$(admin GET /admin/api/cluster/status || true)"
    grep -q '"leader":"bench"' <<<"$status" && break
    sleep 0.5
done
key='{"id":"bench","name":"bench"}'
case "$ARM" in rpm|rpm_local) key='{"id":"bench","name":"bench","rpm_limit":2000000000}' ;; esac
case "$ARM" in leases|counters|spend|all)
    spend=null
    case "$ARM" in spend|all) spend='"1000000"' ;; esac
    admin POST /admin/api/budgets \
        '{"id":"bench","name":"bench","limit":'"$spend"',"max_requests":1000000000000,"period":"total"}' >/dev/null
    key='{"id":"bench","name":"bench","budget_id":"bench"}'
    [ "$ARM" = all ] && key='{"id":"bench","name":"bench","budget_id":"bench","rpm_limit":2000000000}'
    ;;
esac
secret="$(admin POST /admin/api/keys "$key" | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"
BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
sequential() { # count
    python3 - "$port" "$1" "$BODY" "$secret" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
headers = {"content-type": "application/json", "authorization": "Bearer " + sys.argv[4]}
for _ in range(int(sys.argv[2])):
    c.request("POST", "/v1/chat/completions", sys.argv[3], headers)
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status}")
PY
}
sequential 50
callgrind_control -i on "$vg" >/dev/null
sequential "$N"
callgrind_control -i off "$vg" >/dev/null
callgrind_control -d "$vg" >/dev/null
sleep 1
case "$ARM" in
    leases|spend|all) limit=budget_requests ;;
    rpm) limit=key_rpm ;;
    *) limit= ;;
esac
if [ -n "$limit" ]; then
    metrics="$(admin GET /metrics)"
    grep -q "aurora_quota_admissions_total{limit=\"$limit\",result=\"admitted\"} [1-9]" <<<"$metrics" \
        || { echo "the $ARM arm admitted nothing through quota leases"; exit 1; }
fi
total="$(grep -h '^totals:' "$out".1 | awk '{print $2}')"
echo "$BIN $ARM: $((total / N)) instructions per request ($N requests, total $total)"
