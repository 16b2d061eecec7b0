#!/usr/bin/env bash
# Gateway benchmark: the same fixed request rate (open loop, oha with latency
# correction) against
#   (a) a fast mock upstream directly: nginx-light returning a canned chat.completion,
#   (b) Aurora (release build) in front of it as an OpenAI-compatible provider,
#   (c) LiteLLM's proxy (pip, pinned, one worker, in a venv) in front of it,
# reporting p50/p99 latency, success, achieved rate, RSS, and Aurora's overhead (both
# as "Aurora minus direct" at the client and from Aurora's own
# aurora_gateway_overhead_seconds histogram). Loopback only; bounded in time.
#
# Usage: gateway/bench/run.sh [RATE_ALL=100] [RATE_HIGH=2000] [SECONDS=20]
#   RATE_ALL  is run against (a), (b) and (c);
#   RATE_HIGH against (a) and (b) only (LiteLLM saturates far below it);
#   then a short ladder of rising rates (LADDER_AURORA, LADDER_LITELLM, LADDER_SECS)
#   finds the highest sustainable step of (b) and (c).
# Env: AURORA_BIN (use this binary instead of building), LITELLM_VENV, BENCH_OUT (keep
# oha's JSON there).
# Needs: oha (cargo install oha --locked), nginx (apt-get install -y nginx-light),
# python3 with venv (LiteLLM is skipped, and the report says so, if it cannot be installed).
set -euo pipefail

RATE_ALL="${1:-100}"
RATE_HIGH="${2:-2000}"
SECS="${3:-20}"
LADDER_SECS="${LADDER_SECS:-10}"
LADDER_AURORA="${LADDER_AURORA:-4000 8000 12000 16000 20000}"
LADDER_LITELLM="${LADDER_LITELLM:-25 50 75 100 150}"
LITELLM_VERSION="1.77.7"
CONNECTIONS=64

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)"; exit 1; }; }
need oha "cargo install oha --locked"
# shellcheck source=gateway/bench/lib.sh
source "$root/gateway/bench/lib.sh"
rss_kb() { status_kb "$1" VmRSS; }
hwm_kb() { status_kb "$1" VmHWM; }

echo "== machine: $(nproc) cores, $(uname -sr), load: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) nginx mock upstream ----------------------------------------------------------
start_nginx_mock "$work/nginx"
pids+=("$NGINX_PID")

# (b) Aurora ------------------------------------------------------------------------
# AURORA_BIN overrides the binary (e.g. a saved copy); otherwise build the release one.
AURORA_BIN="${AURORA_BIN:-}"
if [ -z "$AURORA_BIN" ]; then
    (cd "$root" && cargo build --release -p aurora-gateway --bin aurora >/dev/null 2>&1) || {
        echo "release build failed"; exit 1; }
    AURORA_BIN="$root/target/release/aurora"
fi
AURORA_PORT="$(free_port)"
cat > "$work/aurora.yaml" <<EOF
gateway:
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
EOF
AURORA_ADMIN_TOKEN=bench-admin-token-0123456789abcdef RUST_LOG=warn "$AURORA_BIN" serve \
    --listen "127.0.0.1:$AURORA_PORT" --data-dir "$work/aurora-data" --config "$work/aurora.yaml" \
    2>"$work/aurora.log" &
pids+=($!)
AURORA_PID=$!
wait_http "http://127.0.0.1:$AURORA_PORT/health" 20 || { echo "aurora did not start"; cat "$work/aurora.log"; exit 1; }

# (c) LiteLLM -----------------------------------------------------------------------
LITELLM_PORT=""
LITELLM_NOTE=""
venv="${LITELLM_VENV:-$root/target/bench-litellm-venv}"
if [ ! -x "$venv/bin/litellm" ]; then
    echo "== installing litellm[proxy]==$LITELLM_VERSION into $venv (one-off)"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "litellm[proxy]==$LITELLM_VERSION"; } >"$work/litellm-install.log" 2>&1; then
        LITELLM_NOTE="LiteLLM skipped: install failed ($(tail -n 1 "$work/litellm-install.log"))"
    fi
fi
if [ -z "$LITELLM_NOTE" ] && [ -x "$venv/bin/litellm" ]; then
    LITELLM_PORT="$(free_port)"
    cat > "$work/litellm.yaml" <<EOF
model_list:
  - model_name: up/gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$NGINX_PORT/v1
      api_key: not-needed
EOF
    # Telemetry off: a loopback benchmark must not call out.
    LITELLM_TELEMETRY=False LITELLM_LOG=ERROR "$venv/bin/litellm" --config "$work/litellm.yaml" \
        --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1 >"$work/litellm.log" 2>&1 &
    pids+=($!)
    LITELLM_PID=$!
    if ! wait_http "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 120; then
        LITELLM_NOTE="LiteLLM skipped: proxy did not start ($(tail -n 1 "$work/litellm.log"))"
        LITELLM_PORT=""
    fi
elif [ -z "$LITELLM_NOTE" ]; then
    LITELLM_NOTE="LiteLLM skipped: no litellm binary in $venv"
fi

BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'

# run NAME PORT RATE -> one result line; oha's JSON kept in $work/NAME-RATE.json
run() {
    local name="$1" port="$2" rate="$3"
    local url="http://127.0.0.1:$port/v1/chat/completions"
    # Warm-up: connections, pools, caches; not measured.
    oha --no-tui -z 3s -q "$rate" -c "$CONNECTIONS" -m POST -H 'content-type: application/json' \
        -d "$BODY" "$url" >/dev/null 2>&1 || true
    oha --no-tui --output-format json -z "${SECS}s" -q "$rate" --latency-correction \
        -c "$CONNECTIONS" -m POST -H 'content-type: application/json' -d "$BODY" "$url" \
        >"$work/$name-$rate.json"
    python3 - "$work/$name-$rate.json" "$name" "$rate" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
total = sum(codes.values()) + sum(r.get("errorDistribution", {}).values())
errors = r.get("errorDistribution", {})
note = ("  errors: " + ", ".join(f"{k} x{v}" for k, v in errors.items())) if errors else ""
print(f"{sys.argv[2]:<8} {sys.argv[3]:>6} req/s  p50 {p['p50']*1e3:8.3f} ms  p99 {p['p99']*1e3:8.3f} ms  "
      f"achieved {s['requestsPerSec']:8.1f} req/s  200s {ok}/{total}{note}")
EOF
}

# Aurora's own overhead histogram (cumulative bucket counts) as "le count" lines.
overhead_buckets() {
    curl -s "http://127.0.0.1:$AURORA_PORT/metrics" \
        | sed -n 's/^aurora_gateway_overhead_seconds_bucket{route="\/v1\/chat\/completions",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
}
# Percentiles of the requests between two bucket dumps (bucket upper bounds).
overhead_between() { # before-file after-file
    python3 - "$1" "$2" <<'EOF'
import sys
def load(path):
    return [(l.split()[0], int(l.split()[1])) for l in open(path) if l.strip()]
before = dict(load(sys.argv[1]))
after = load(sys.argv[2])
diff = [(le, n - before.get(le, 0)) for le, n in after]
total = diff[-1][1] if diff else 0
out = []
for q in (0.5, 0.9, 0.99, 0.999):
    for le, n in diff:
        if total and n >= q * total:
            out.append(f"p{q*100:g} <= {float(le)*1e6:.0f} us" if le != "+Inf" else f"p{q*100:g} > 500 ms")
            break
print(f"{total} requests: " + ", ".join(out))
EOF
}

echo
echo "== rate $RATE_ALL req/s for ${SECS}s each, $CONNECTIONS connections, open loop (oha -q, --latency-correction)"
run direct "$NGINX_PORT" "$RATE_ALL"
overhead_buckets >"$work/ob0"
run aurora "$AURORA_PORT" "$RATE_ALL"
overhead_buckets >"$work/ob1"
if [ -n "$LITELLM_PORT" ]; then run litellm "$LITELLM_PORT" "$RATE_ALL"; fi
echo
echo "== rate $RATE_HIGH req/s for ${SECS}s each (direct and Aurora)"
run direct "$NGINX_PORT" "$RATE_HIGH"
overhead_buckets >"$work/ob2"
run aurora "$AURORA_PORT" "$RATE_HIGH"
overhead_buckets >"$work/ob3"
echo
echo "== Aurora's own overhead histogram (total minus upstream time, per request, warm-ups included):"
echo "   at $RATE_ALL req/s: $(overhead_between "$work/ob0" "$work/ob1")"
echo "   at $RATE_HIGH req/s: $(overhead_between "$work/ob2" "$work/ob3")"
python3 - "$work" "$RATE_ALL" "$RATE_HIGH" <<'EOF'
import json, sys, os
work, lo, hi = sys.argv[1], sys.argv[2], sys.argv[3]
def pct(name, rate, key):
    path = os.path.join(work, f"{name}-{rate}.json")
    return json.load(open(path))["latencyPercentiles"][key] if os.path.exists(path) else None
for rate in (lo, hi):
    d50, a50 = pct("direct", rate, "p50"), pct("aurora", rate, "p50")
    d99, a99 = pct("direct", rate, "p99"), pct("aurora", rate, "p99")
    if None not in (d50, a50, d99, a99):
        print(f"   client-side at {rate} req/s: Aurora − direct = p50 {(a50-d50)*1e6:+.0f} us, p99 {(a99-d99)*1e6:+.0f} us")
EOF
echo
echo "== ladder: ${LADDER_SECS}s per step; sustainable = all 200, achieved >= 99% of offered, p99 <= 50 ms"
ladder() { # name port rates...
    local name="$1" port="$2"; shift 2
    local best=0
    for rate in "$@"; do
        SECS=$LADDER_SECS run "$name" "$port" "$rate"
        if python3 - "$work/$name-$rate.json" "$rate" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200")
ok = (bad == 0 and r["summary"]["requestsPerSec"] >= 0.99 * float(sys.argv[2])
      and r["latencyPercentiles"]["p99"] <= 0.050)
sys.exit(0 if ok else 1)
EOF
        then best=$rate; else break; fi
    done
    echo "   $name: highest sustainable step $best req/s"
}
ladder aurora "$AURORA_PORT" $LADDER_AURORA
if [ -n "$LITELLM_PORT" ]; then ladder litellm "$LITELLM_PORT" $LADDER_LITELLM; fi
if [ -n "${BENCH_OUT:-}" ]; then mkdir -p "$BENCH_OUT" && cp "$work"/*.json "$BENCH_OUT"/; fi

echo
echo "== RSS after the runs (current / peak):"
echo "   nginx   $(rss_kb "$NGINX_PID") kB / $(hwm_kb "$NGINX_PID") kB (master process; 1 worker)"
echo "   aurora  $(rss_kb "$AURORA_PID") kB / $(hwm_kb "$AURORA_PID") kB"
if [ -n "$LITELLM_PORT" ]; then
    # LiteLLM runs as a process tree (uvicorn worker): sum every process under it.
    total=0; peak=0
    for pid in $LITELLM_PID $(pgrep -P "$LITELLM_PID" || true); do
        total=$(( total + $(rss_kb "$pid") )); peak=$(( peak + $(hwm_kb "$pid") ))
    done
    echo "   litellm $total kB / $peak kB (sum over its processes)"
fi
if [ -n "$LITELLM_NOTE" ]; then echo "   $LITELLM_NOTE"; fi
