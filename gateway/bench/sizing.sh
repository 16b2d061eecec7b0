#!/usr/bin/env bash
# Node sizing: resident memory and CPU per 1,000 req/s of a release `aurora`, one
# node, the built-in mock provider (no upstream network), non-streaming chat
# completions, at fixed open-loop rates (oha -q with latency correction). Each rate
# runs RUNS times, each on a freshly started node, after a 3 s warm-up; CPU is the
# node's utime+stime (/proc/PID/stat) over the measured window. Prints one line per
# run and the median per rate (docs/operations.md, "Sizing").
#
# Usage: gateway/bench/sizing.sh            (RATES="250 500 1000" SECS=20 RUNS=3)
# Env: AURORA_BIN (this binary instead of building one), OHA (default: oha on PATH;
# cargo install oha --locked), RATES, SECS, RUNS, CONNECTIONS (32).
set -euo pipefail

RATES="${RATES:-250 500 1000}"
SECS="${SECS:-20}"
RUNS="${RUNS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
OHA="${OHA:-oha}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v "$OHA" >/dev/null 2>&1 || { echo "missing: oha (cargo install oha --locked, or OHA=path)"; exit 1; }
if [ -z "${AURORA_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p aurora-gateway --bin aurora)
    AURORA_BIN="${CARGO_TARGET_DIR:-$root/target}/release/aurora"
fi

# shellcheck source=gateway/bench/lib.sh
source "$root/gateway/bench/lib.sh"
TICKS="$(getconf CLK_TCK)"
BODY='{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'

echo "== $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$root" rev-parse --short HEAD)"
echo "== $AURORA_BIN; rates: $RATES req/s, ${SECS}s each, $RUNS runs, $CONNECTIONS connections"
results="$work/results"
for rate in $RATES; do
    for run in $(seq 1 "$RUNS"); do
        port="$(free_port)"
        "$AURORA_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data-$rate-$run" \
            >"$work/node.log" 2>&1 &
        pid=$!
        url="http://127.0.0.1:$port/v1/chat/completions"
        wait_http "http://127.0.0.1:$port/health" 10 || true
        "$OHA" --no-tui -z 3s -q "$rate" -c "$CONNECTIONS" -m POST -H 'content-type: application/json' \
            -d "$BODY" "$url" >/dev/null 2>&1 || true
        before="$(cpu_ticks "$pid")"
        "$OHA" --no-tui --output-format json -z "${SECS}s" -q "$rate" --latency-correction \
            -c "$CONNECTIONS" -m POST -H 'content-type: application/json' -d "$BODY" "$url" \
            >"$work/oha.json"
        after="$(cpu_ticks "$pid")"
        rss="$(status_kb "$pid" VmRSS)"
        hwm="$(status_kb "$pid" VmHWM)"
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
        python3 - "$work/oha.json" "$rate" "$run" "$before" "$after" "$TICKS" "$SECS" "$rss" "$hwm" \
            >>"$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rate, run, before, after, ticks, secs, rss, hwm = sys.argv[2:]
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
total = sum(codes.values()) + sum(r.get("errorDistribution", {}).values())
achieved = s["requestsPerSec"]
cpu = (int(after) - int(before)) / int(ticks)
cores = cpu / float(secs)
per_1k = cores / (achieved / 1000) if achieved else float("nan")
print(f"{rate} {run} {achieved:.1f} {codes.get('200', 0)} {total} {cpu:.2f} {cores:.3f} {per_1k:.3f} "
      f"{int(rss) / 1024:.1f} {int(hwm) / 1024:.1f} {p['p50'] * 1e3:.3f} {p['p99'] * 1e3:.3f}")
EOF
        tail -1 "$results" | awk '{printf "rate %5s run %s: achieved %7s req/s, 200s %s/%s, CPU %5s s (%s cores), %s cores per 1k req/s, RSS %s MiB (peak %s), p50 %s ms, p99 %s ms\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12}'
    done
done
echo "== median of $RUNS runs per rate"
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for rate in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == rate]
    med = lambda i: statistics.median(float(r[i]) for r in mine)
    print(f"rate {rate:>5} req/s: achieved {med(2):8.1f} req/s, {med(6):.3f} cores, "
          f"{med(7):.3f} cores per 1k req/s, RSS {med(8):.1f} MiB (peak {med(9):.1f}), p99 {med(11):.3f} ms")
EOF
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
