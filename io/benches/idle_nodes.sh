#!/usr/bin/env bash
# Idle footprint of real `aurora` processes on loopback: VmRSS of each node right after
# the cluster formed and again after IDLE seconds, and each node's cluster traffic over
# those seconds from its own /metrics (aurora_gossip_bytes_*_total: the core's message
# bytes, before QUIC framing; `cargo bench -p aurora-io --bench node -- gossip` counts
# the bytes on the wire).
#
# Usage: io/benches/idle_nodes.sh [AURORA_BINARY] [IDLE_SECONDS] [NODES]
#   defaults: target/release/aurora, 30, 3
# Ports: HTTP 18081.., gossip 27946, 27956, ... (override with AURORA_BENCH_HTTP_PORT,
# AURORA_BENCH_GOSSIP_PORT). Everything stays on 127.0.0.1; the nodes are stopped with
# SIGTERM (by PID) and their data directory removed on exit.
set -euo pipefail

BIN=${1:-target/release/aurora}
IDLE=${2:-30}
NODES=${3:-3}
HTTP=${AURORA_BENCH_HTTP_PORT:-18080}
GOSSIP=${AURORA_BENCH_GOSSIP_PORT:-27946}
READY_TIMEOUT=60

DIR=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

gossip_port() { echo $((GOSSIP + 10 * ($1 - 1))); }
http_url() { echo "http://127.0.0.1:$((HTTP + $1))"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# metric NODE NAME: the value of an unlabelled series (0 if absent).
metric() {
    curl -fsS "$(http_url "$1")/metrics" | awk -v n="$2" '$1 == n {v = $2} END {print v + 0}'
}
alive() {
    curl -fsS "$(http_url "$1")/metrics" 2>/dev/null |
        awk '$1 == "aurora_cluster_members{state=\"alive\"}" {v = $2} END {print v + 0}'
}

export CLUSTER_SECRET
CLUSTER_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
SEEDS=$(for i in $(seq 1 "$NODES"); do printf '127.0.0.1:%s,' "$(gossip_port "$i")"; done)
SEEDS=${SEEDS%,}

for i in $(seq 1 "$NODES"); do
    port=$(gossip_port "$i")
    "$BIN" serve --listen "127.0.0.1:$((HTTP + i))" --data-dir "$DIR/node$i" \
        --cluster-enabled true --cluster-node-id "bench-$i" \
        --cluster-bind-addr 127.0.0.1 --cluster-bind-port "$port" \
        --cluster-sync-bind-port "$((port + 1))" --cluster-seed-nodes "$SEEDS" \
        >"$DIR/node$i.log" 2>&1 &
    PIDS+=("$!")
done

started=$(date +%s)
for i in $(seq 1 "$NODES"); do
    until [ "$(alive "$i")" = "$NODES" ]; do
        if [ $(($(date +%s) - started)) -ge "$READY_TIMEOUT" ]; then
            echo "node $i did not see $NODES alive members within ${READY_TIMEOUT}s" >&2
            tail -5 "$DIR/node$i.log" >&2
            exit 1
        fi
        sleep 0.2
    done
done
echo "# $NODES aurora nodes formed a cluster in $(($(date +%s) - started)) s; idle for ${IDLE} s"

declare -A RSS0 SENT0 RECV0
for i in $(seq 1 "$NODES"); do
    RSS0[$i]=$(rss_kb "${PIDS[$((i - 1))]}")
    SENT0[$i]=$(metric "$i" aurora_gossip_bytes_sent_total)
    RECV0[$i]=$(metric "$i" aurora_gossip_bytes_received_total)
done
sleep "$IDLE"
for i in $(seq 1 "$NODES"); do
    rss=$(rss_kb "${PIDS[$((i - 1))]}")
    sent=$(metric "$i" aurora_gossip_bytes_sent_total)
    recv=$(metric "$i" aurora_gossip_bytes_received_total)
    printf 'node %s: VmRSS %s kB after start-up, %s kB after %s s idle; cluster messages sent %s B/s, received %s B/s\n' \
        "$i" "${RSS0[$i]}" "$rss" "$IDLE" \
        "$(((sent - SENT0[$i]) / IDLE))" "$(((recv - RECV0[$i]) / IDLE))"
done
