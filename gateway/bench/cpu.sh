#!/usr/bin/env bash
# CPU per request: Aurora's own CPU time (user + system, from /proc/PID/stat) while
# it serves a fixed open-loop rate through to a fast mock upstream (nginx-light
# returning a canned chat.completion), for one or more binaries, alternated in one
# session so a noisy machine affects each the same way. CPU-seconds, unlike a
# throughput ceiling, do not depend on how much of the machine is free.
#
# Usage: gateway/bench/cpu.sh RATE SECS ROUNDS BIN [BIN...]
#   e.g. gateway/bench/cpu.sh 2000 10 3 ./aurora-old target/release/aurora
# Prints one line per binary and round, then the median per binary.
# Needs: oha (cargo install oha --locked), nginx (apt-get install -y nginx-light).
set -euo pipefail
RATE="$1"; SECS="$2"; ROUNDS="$3"; shift 3
[ "$#" -ge 1 ] || { echo "usage: $0 RATE SECS ROUNDS BIN [BIN...]"; exit 2; }
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
rss_kb() { status_kb "$1" VmRSS; }
ticks() { cpu_ticks "$1"; }

start_nginx_mock "$work/nginx"
pids+=("$NGINX_PID")
cat > "$work/aurora.yaml" <<Y
gateway:
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
Y
BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
HZ="$(getconf CLK_TCK)"
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RATE req/s for ${SECS}s, 64 connections, $ROUNDS rounds"
results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
    i=0
    for bin in "$@"; do
        i=$((i + 1))
        port="$(free_port)"
        AURORA_ADMIN_TOKEN=bench-admin-token-0123456789abcdef-cpu RUST_LOG=warn "$bin" serve \
            --listen "127.0.0.1:$port" --data-dir "$work/data-$i-$round" --config "$work/aurora.yaml" \
            2>"$work/aurora-$i.log" &
        apid=$!
        wait_http "http://127.0.0.1:$port/health" 20 || { echo "$bin did not start"; cat "$work/aurora-$i.log"; exit 1; }
        url="http://127.0.0.1:$port/v1/chat/completions"
        oha --no-tui -z 3s -q "$RATE" -c 64 -m POST -H 'content-type: application/json' -d "$BODY" "$url" >/dev/null 2>&1 || true
        t0="$(ticks "$apid")"
        oha --no-tui --output-format json -z "${SECS}s" -q "$RATE" --latency-correction -c 64 -m POST \
            -H 'content-type: application/json' -d "$BODY" "$url" >"$work/oha.json"
        t1="$(ticks "$apid")"
        rss="$(rss_kb "$apid")"
        kill "$apid"; wait "$apid" 2>/dev/null || true
        python3 - "$work/oha.json" "$bin" "$round" "$((t1 - t0))" "$HZ" "$rss" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
cpu_s = int(sys.argv[4]) / int(sys.argv[5])
p = r["latencyPercentiles"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{cpu_s / ok * 1e6 if ok else 0:.1f}\t{r['summary']['requestsPerSec']:.0f}\t{p['p50']*1e3:.3f}\t{p['p99']*1e3:.3f}\t{ok}\t{int(sys.argv[6]) // 1024}")
PY
        tail -n 1 "$results" | awk -F'\t' '{printf "%-40s round %s: %7s us CPU/request  achieved %6s req/s  p50 %s ms  p99 %s ms  200s %s  RSS %s MiB\n", $1, $2, $3, $4, $5, $6, $7, $8}'
    done
done
echo "== medians"
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for b in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == b]
    med = lambda k: statistics.median(float(r[k]) for r in mine)
    print(f"{b:<40} {med(2):7.1f} us CPU/request  achieved {med(3):6.0f} req/s  p50 {med(4):.3f} ms  p99 {med(5):.3f} ms  RSS {med(7):.0f} MiB")
PY
