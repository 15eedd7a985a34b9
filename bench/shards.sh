#!/usr/bin/env bash
# Throughput against the number of Redis Cluster shards: two nodes relay 200-byte messages (50
# pairs split across them, closed loop) on one Redis, then on Redis Clusters of 1, 2 and 3
# masters, and the CPU each Redis process spent is read from /proc. Writes
# bench/results/shards.md (and the raw JSON beside the other runs').
#
#   bench/shards.sh [BUILD_DIR]     (default build/, a Release build with both binaries)
#
# Variables: DURATION (seconds measured per run, default 8), WARMUP (2), SHARDS ("1 2 3"),
# OUT (bench/results). The clusters have masters only (no replicas) and are made by hand
# (CLUSTER MEET and ADDSLOTSRANGE), since redis-cli --cluster create wants three masters at least.
# Every process it starts is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
node_bin=$build/switchboard
bench_bin=$build/switchboard-bench
out=${OUT:-$root/bench/results}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
shard_counts=${SHARDS:-1 2 3}

for b in "$node_bin" "$bench_bin"; do
    [ -x "$b" ] || { echo "shards.sh: $b is missing: build first (make bench does)" >&2; exit 1; }
done
for t in redis-server redis-cli python3; do
    command -v "$t" >/dev/null || { echo "shards.sh: $t is missing (bash deploy/deps.sh bench)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/switchboard-shards.XXXXXX)
mkdir -p "$out/raw"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cpu_ticks PID...: utime+stime of the processes, in clock ticks, added up.
cpu_ticks() {
    local total=0 p s
    for p in "$@"; do
        s=$(cat "/proc/$p/stat")
        s=${s##*) }
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# start_redis DIR [ARGS...]: a redis-server on a free port; sets $redis_port and $redis_pid.
start_redis() {
    local dir=$1
    shift
    mkdir -p "$dir"
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        "$@" >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 1 100); do
        [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "shards.sh: redis-server did not start:" >&2
    cat "$dir/redis.log" >&2
    exit 1
}

# start_node ARGS...: a node; sets $node_port and $node_pid once it listens.
start_node() {
    local log=$work/node-$RANDOM.log
    "$node_bin" --listen 127.0.0.1:0 --log-format text --ice-servers '[]' \
        --rate-messages 1g --rate-bytes 1g --source-connections 1g --source-handshakes 1g \
        --drain-delay 0 --drain-seconds 0 "$@" >"$log" 2>&1 &
    node_pid=$!
    pids+=("$node_pid")
    node_port=
    for _ in $(seq 1 200); do
        node_port=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$node_port" ] && break
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$node_port" ] || { echo "shards.sh: the node did not start:" >&2; cat "$log" >&2; exit 1; }
    for _ in $(seq 1 200); do
        [ "$(python3 -c 'import sys, urllib.request as u
try: print(u.urlopen(sys.argv[1], timeout=1).status)
except Exception as e: print(getattr(e, "code", 0))' "http://127.0.0.1:$node_port/readyz")" = 200 ] && return 0
        sleep 0.1
    done
    echo "shards.sh: the node was not ready within 20 s:" >&2
    cat "$log" >&2
    exit 1
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# run NAME URL REDIS_PIDS...: two nodes on URL, the load, and Redis's CPU over the run.
rows=()
run() {
    local name=$1 url=$2
    shift 2
    start_node --redis "$url"
    local a_pid=$node_pid a_port=$node_port
    start_node --redis "$url"
    local b_pid=$node_pid b_port=$node_port
    local before=() t0 after t1 p i deltas=
    for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
    t0=$(date +%s.%N)
    echo "== $name" >&2
    "$bench_bin" relay --pairs 50 --window 4 --warmup "$warmup" --duration "$duration" --size 200 \
        --quiet --json "ws://127.0.0.1:$a_port/ws" "ws://127.0.0.1:$b_port/ws" \
        >"$out/raw/shards-$name.json" || echo "shards.sh: $name did not answer every message" >&2
    t1=$(date +%s.%N)
    i=0
    for p in "$@"; do
        after=$(cpu_ticks "$p")
        deltas+="$((after - before[i])),"
        i=$((i + 1))
    done
    rows+=("$name ${deltas%,} $t0 $t1")
    stop_pid "$a_pid"
    stop_pid "$b_pid"
}

# One Redis.
start_redis "$work/single"
single_pid=$redis_pid
run single "redis://127.0.0.1:$redis_port" "$single_pid"
stop_pid "$single_pid"

# Clusters of N masters: slots split evenly, joined with CLUSTER MEET.
for n in $shard_counts; do
    ports=()
    cpids=()
    for ((i = 0; i < n; i++)); do
        bus=$(free_port) # its cluster bus: port + 10000 may be past 65535
        ((i == 0)) && bus0=$bus
        start_redis "$work/c$n-$i" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-port "$bus"
        ports+=("$redis_port")
        cpids+=("$redis_pid")
    done
    for ((i = 0; i < n; i++)); do
        ((i == 0)) || redis-cli -p "${ports[i]}" cluster meet 127.0.0.1 "${ports[0]}" "$bus0" >/dev/null
        lo=$((16384 * i / n))
        hi=$((16384 * (i + 1) / n - 1))
        redis-cli -p "${ports[i]}" cluster addslotsrange "$lo" "$hi" >/dev/null
    done
    for _ in $(seq 1 200); do
        ok=1
        for p in "${ports[@]}"; do
            redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
            [ "$(redis-cli -p "$p" cluster info | grep -c '^cluster_known_nodes:'"$n")" = 1 ] || ok=0
        done
        [ $ok = 1 ] && break
        sleep 0.1
    done
    [ $ok = 1 ] || { echo "shards.sh: the cluster of $n did not come up" >&2; exit 1; }
    seeds=$(printf '127.0.0.1:%s,' "${ports[@]}")
    run "cluster-$n" "redis+cluster://${seeds%,}" "${cpids[@]}"
    for p in "${cpids[@]}"; do stop_pid "$p"; done
done

python3 - "$out" "${rows[@]}" <<'EOF'
import json, os, sys
out, rows = sys.argv[1], sys.argv[2:]
hz = os.sysconf("SC_CLK_TCK")
lines = ["# Throughput against Redis Cluster shards", "",
         "Two nodes, 50 pairs of peers split across them, 200-byte candidates, closed loop "
         "(window 4), on one Redis and on clusters of 1 to 3 masters (no replicas), all on this "
         "machine. Written by `bench/shards.sh`.", "",
         "| Redis | messages/s | node CPU per message | Redis CPU per message (all) | "
         "busiest Redis's share of one core |",
         "|---|---:|---:|---:|---:|"]
for row in rows:
    name, ticks, t0, t1 = row.split()
    ticks = [int(x) for x in ticks.split(",")]
    n, secs = len(ticks), float(t1) - float(t0)
    r = json.load(open(os.path.join(out, "raw", f"shards-{name}.json")))
    rate = r["throughput"]["delivered_per_s"]
    node_us = r["cpu"]["nodes"]["us_per_msg"]
    msgs = r["messages"]["sent_with_warmup"]  # Redis's CPU is read over the whole run
    redis_us = sum(ticks) / hz / msgs * 1e6 if msgs else 0
    busiest = max(ticks) / hz / secs * 100
    label = "one Redis" if name == "single" else f"cluster, {n} master{'s' if n > 1 else ''}"
    lines.append(f"| {label} | {rate:,.0f} | {node_us:.1f} µs | {redis_us:.2f} µs | "
                 f"{busiest:.0f} % |")
open(os.path.join(out, "shards.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
