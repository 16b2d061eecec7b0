#!/usr/bin/env bash
# Response-cache latency: hit vs miss vs no cache, closed loop (one request at a time),
# on one node and on a cluster of three (the key's owner another node for two hits in
# three), in front of the nginx mock upstream of run.sh. Loopback only; ~1 minute.
#
# Usage: gateway/bench/cache.sh [N=2000]   (N requests per phase; see cache_client.py)
# Env: AURORA_BIN (use this binary instead of building the release one).
# Needs: nginx (apt-get install -y nginx-light), python3, curl.
set -euo pipefail

N="${1:-2000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=gateway/bench/lib.sh
source "$root/gateway/bench/lib.sh"

echo "== machine: $(nproc) cores, $(uname -sr), load: $(cut -d' ' -f1-3 /proc/loadavg)"
start_nginx_mock "$work/nginx"
pids+=("$NGINX_PID")

AURORA_BIN="${AURORA_BIN:-}"
if [ -z "$AURORA_BIN" ]; then
    (cd "$root" && cargo build --release -p aurora-gateway --bin aurora >/dev/null 2>&1) || {
        echo "release build failed"; exit 1; }
    AURORA_BIN="$root/target/release/aurora"
fi
echo "== aurora: $AURORA_BIN ($("$AURORA_BIN" --version 2>/dev/null || echo '?'))"
cat > "$work/aurora.yaml" <<YAML
gateway:
  auth: open
  providers:
    - {name: up, kind: openai, base_url: "http://127.0.0.1:$NGINX_PORT/v1"}
  models:
    - {name: up/gpt-4o-mini}
YAML
export AURORA_ADMIN_TOKEN=bench-admin-token-0123456789abcdef RUST_LOG=warn
export CLUSTER_SECRET=bench-cluster-secret-of-more-than-16-bytes

# One node, not clustered: every key is its own.
port="$(free_port)"
"$AURORA_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/single" \
    --config "$work/aurora.yaml" 2>"$work/single.log" &
pids+=($!)
wait_http "http://127.0.0.1:$port/health" 20 || { echo "aurora did not start"; cat "$work/single.log"; exit 1; }
echo "== one node"
python3 "$root/gateway/bench/cache_client.py" "$N" "http://127.0.0.1:$port"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

# Three nodes on 127.0.0.1-3, seeded with each other.
urls=(); seeds=()
for i in 1 2 3; do
    ip="127.0.0.$i"; http_port="$(free_port)"; gossip="$(free_port)"; sync="$(free_port)"
    urls+=("http://$ip:$http_port"); seeds+=("$ip:$gossip")
    spec[i]="$ip $http_port $gossip $sync"
done
seed_list="$(IFS=,; echo "${seeds[*]}")"
for i in 1 2 3; do
    read -r ip http_port gossip sync <<<"${spec[i]}"
    "$AURORA_BIN" serve --listen "$ip:$http_port" --data-dir "$work/node$i" --config "$work/aurora.yaml" \
        --cluster-enabled true --cluster-node-id "node-$i" --cluster-bind-addr "$ip" \
        --cluster-bind-port "$gossip" --cluster-sync-bind-port "$sync" \
        --cluster-seed-nodes "$seed_list" --cluster-advertise-url "http://$ip:$http_port" \
        2>"$work/node$i.log" &
    pids+=($!)
done
for url in "${urls[@]}"; do
    wait_http "$url/health" 20 || { echo "a node did not start"; tail -n 5 "$work"/node*.log; exit 1; }
done
# Until every node sees three alive members (the owners must agree).
for url in "${urls[@]}"; do
    for _ in $(seq 1 200); do
        alive="$(curl -s -H "authorization: Bearer $AURORA_ADMIN_TOKEN" "$url/admin/api/cluster/nodes" \
            | python3 -c 'import json,sys; print(sum(r["state"]=="alive" for r in json.load(sys.stdin)["data"]))' 2>/dev/null || echo 0)"
        [ "$alive" = 3 ] && break
        sleep 0.1
    done
    [ "$alive" = 3 ] || { echo "the cluster did not form"; exit 1; }
done
echo "== three nodes"
python3 "$root/gateway/bench/cache_client.py" "$N" "${urls[@]}"
