#!/usr/bin/env bash
# CPU per request with limits on and off at a fixed open-loop rate: one Aurora
# process (a one-node cluster in active_active, so it elects itself and quota leases
# are on) in front of the nginx mock, four API keys on it, each arm's load sent with
# its own key, the arms alternated in rounds in one session. Aurora's CPU time (user +
# system, /proc/PID/stat) over each arm's run, divided by its 200s, is the cost of a
# request; the ratio of an arm to `off` is what its limits cost.
#   off     a key with no limit;
#   rpm     rpm_limit 2*10^9 (admitted by quota leases, never reached);
#   budget  a budget with max_requests 10^12 (quota leases) and a spend limit of
#           10^6 USD (the replicated counters), never reached;
#   all     both.
#
# Usage: gateway/bench/limits_cpu.sh BIN [RATE=2000] [SECS=10] [ROUNDS=3]
# Needs: oha (cargo install oha --locked), nginx (apt-get install -y nginx-light).
set -euo pipefail
BIN="$1"; RATE="${2:-2000}"; SECS="${3:-10}"; ROUNDS="${4:-3}"
command -v oha >/dev/null || { echo "missing: oha (cargo install oha --locked)"; exit 1; }
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

start_nginx_mock "$work/nginx"
pids+=("$NGINX_PID")
cat > "$work/aurora.yaml" <<Y
gateway:
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
Y
port="$(free_port)"; gossip="$(free_port)"; sync="$(free_port)"
token=bench-admin-token-0123456789abcdef-lc
CLUSTER_SECRET=a-bench-cluster-secret-of-32-bytes AURORA_ADMIN_TOKEN="$token" RUST_LOG=warn \
    "$BIN" serve \
    --listen "127.0.0.1:$port" --data-dir "$work/data" --config "$work/aurora.yaml" \
    --cluster-enabled true --cluster-node-id bench --cluster-bind-addr 127.0.0.1 \
    --cluster-bind-port "$gossip" --cluster-sync-bind-port "$sync" \
    --cluster-seed-nodes "127.0.0.1:$gossip" --cluster-advertise-url "http://127.0.0.1:$port" \
    --cluster-failover-mode active_active 2>"$work/aurora.log" &
apid=$!
pids+=("$apid")
wait_http "http://127.0.0.1:$port/health" 30 || { echo "aurora did not start"; cat "$work/aurora.log"; exit 1; }
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
admin POST /admin/api/budgets \
    '{"id":"bench","name":"bench","limit":"1000000","max_requests":1000000000000,"period":"total"}' >/dev/null
declare -A secret
for arm in off rpm budget all; do
    case "$arm" in
        off) key='{"id":"off","name":"off"}' ;;
        rpm) key='{"id":"rpm","name":"rpm","rpm_limit":2000000000}' ;;
        budget) key='{"id":"budget","name":"budget","budget_id":"bench"}' ;;
        all) key='{"id":"all","name":"all","budget_id":"bench","rpm_limit":2000000000}' ;;
    esac
    secret[$arm]="$(admin POST /admin/api/keys "$key" | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')"
done
url="http://127.0.0.1:$port/v1/chat/completions"
BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
HZ="$(getconf CLK_TCK)"
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RATE req/s for ${SECS}s, 64 connections, $ROUNDS rounds, $BIN"
results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
    for arm in off rpm budget all; do
        auth="authorization: Bearer ${secret[$arm]}"
        oha --no-tui -z 2s -q "$RATE" -c 64 -m POST -H 'content-type: application/json' -H "$auth" \
            -d "$BODY" "$url" >/dev/null 2>&1 || true
        t0="$(cpu_ticks "$apid")"
        oha --no-tui --output-format json -z "${SECS}s" -q "$RATE" --latency-correction -c 64 -m POST \
            -H 'content-type: application/json' -H "$auth" -d "$BODY" "$url" >"$work/oha.json"
        t1="$(cpu_ticks "$apid")"
        python3 - "$work/oha.json" "$arm" "$round" "$((t1 - t0))" "$HZ" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
other = sum(v for k, v in codes.items() if k != "200")
cpu_s = int(sys.argv[4]) / int(sys.argv[5])
p = r["latencyPercentiles"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{cpu_s / ok * 1e6 if ok else 0:.1f}\t{r['summary']['requestsPerSec']:.0f}\t{p['p50']*1e3:.3f}\t{p['p99']*1e3:.3f}\t{ok}\t{other}")
PY
        tail -n 1 "$results" | awk -F'\t' '{printf "%-7s round %s: %7s us CPU/request  achieved %6s req/s  p50 %s ms  p99 %s ms  200s %s  others %s\n", $1, $2, $3, $4, $5, $6, $7, $8}'
    done
done
metrics="$(admin GET /metrics)"
grep -q 'aurora_quota_admissions_total{limit="key_rpm",result="admitted"} [1-9]' <<<"$metrics" \
    || { echo "the rpm arm admitted nothing through quota leases"; exit 1; }
echo "== medians (vs off)"
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
med = lambda arm, k: statistics.median(float(r[k]) for r in rows if r[0] == arm)
base = med("off", 2)
for arm in ["off", "rpm", "budget", "all"]:
    cpu = med(arm, 2)
    print(f"{arm:<7} {cpu:7.1f} us CPU/request ({(cpu / base - 1) * 100:+.1f} %)  achieved {med(arm, 3):6.0f} req/s  p50 {med(arm, 4):.3f} ms  p99 {med(arm, 5):.3f} ms")
PY
