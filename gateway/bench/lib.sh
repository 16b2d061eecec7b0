# Shared by the gateway benchmark scripts (run.sh, cpu.sh, sizing.sh); source it.
# Defines: free_port, wait_http URL SECS, cpu_ticks PID, status_kb PID KEY, and
# start_nginx_mock DIR (a canned chat.completion upstream; sets NGINX_PORT, NGINX_PID).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL SECS: 0 once URL answers, 1 after SECS seconds.
wait_http() {
    for _ in $(seq 1 $(( $2 * 10 ))); do
        if curl -s -o /dev/null -m 1 "$1"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# CPU time (user + system) of PID, in clock ticks (getconf CLK_TCK a second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A kB field of /proc/PID/status (VmRSS, VmHWM), 0 when the process is gone.
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The upstream's canned answer (with usage, as providers send it).
CANNED='{"id":"chatcmpl-bench","object":"chat.completion","created":1735689600,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark mock upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}'

# start_nginx_mock DIR: nginx-light (one worker) answering every request with $CANNED,
# its files under DIR; sets NGINX_PORT and NGINX_PID, exits 1 if it does not start.
start_nginx_mock() {
    local dir="$1"
    local nginx
    nginx="$(command -v nginx || echo /usr/sbin/nginx)"
    [ -x "$nginx" ] || { echo "missing: nginx (apt-get install -y nginx-light)"; exit 1; }
    NGINX_PORT="$(free_port)"
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/json;
            return 200 '$CANNED';
        }
    }
}
NGINX
    "$nginx" -c "$dir/nginx.conf" -p "$dir" &
    NGINX_PID=$!
    wait_http "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" 10 || {
        echo "nginx did not start"; cat "$dir/error.log"; exit 1; }
}
