#!/usr/bin/env bash
# The standard benchmark suite: starts redis-server and nodes on loopback (limits lifted), runs
# switchboard-bench in each mode, and writes bench/results/latest.md with PNG plots beside it.
#
#   bench/run.sh [BUILD_DIR]     (default build/, a Release build with both binaries)
#
# Variables: DURATION (seconds measured per run, default 8), WARMUP (2), SWEEP_DURATION (5),
# CONNS ("1000 15000"), OUT (bench/results). Every process it starts is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
node_bin=$build/switchboard
bench_bin=$build/switchboard-bench
out=${OUT:-$root/bench/results}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
sweep_duration=${SWEEP_DURATION:-5}
conns=${CONNS:-1000 15000}

for b in "$node_bin" "$bench_bin"; do
    [ -x "$b" ] || { echo "run.sh: $b is missing: build first (make bench does)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "run.sh: redis-server is missing (bash deploy/deps.sh bench)" >&2; exit 1; }

work=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
mkdir -p "$out/raw"
rm -f "$out"/raw/*.json
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

# Starts a node (extra options as arguments), waits for its "listening on" line, and sets
# $node_port and $node_pid.
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
        [ -n "$node_port" ] && return 0
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: the node did not start:" >&2
    cat "$log" >&2
    exit 1
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Runs the bench; its JSON goes to raw/NAME.json. A run that fails is reported and the suite
# goes on (the summary marks it).
bench() {
    local name=$1
    shift
    echo "== $name: switchboard-bench $*" >&2
    if ! "$bench_bin" "$@" --quiet --json >"$out/raw/$name.json"; then
        echo "run.sh: $name did not answer every message (see above)" >&2
    fi
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
redis=redis://127.0.0.1:$redis_port

load=(--pairs 50 --window 4 --warmup "$warmup" --duration "$duration")

# One node alone (its embedded bus), then two nodes on Redis with each pair split across them.
start_node
single_port=$node_port
single_pid=$node_pid
bench single-200 relay "${load[@]}" --size 200 "ws://127.0.0.1:$single_port/ws"
bench single-webrtc relay "${load[@]}" --mix webrtc "ws://127.0.0.1:$single_port/ws"
stop_pid "$single_pid"

start_node --redis "$redis"
a_port=$node_port
start_node --redis "$redis"
b_port=$node_port
urls=("ws://127.0.0.1:$a_port/ws" "ws://127.0.0.1:$b_port/ws")
bench cluster-200 relay "${load[@]}" --size 200 --redis "$redis" "${urls[@]}"
bench cluster-2k relay "${load[@]}" --size 2048 --redis "$redis" "${urls[@]}"
bench cluster-webrtc relay "${load[@]}" --mix webrtc --redis "$redis" "${urls[@]}"

# The floor: the same messages through the same Redis with bare hiredis.
bench baseline-200 baseline "${load[@]}" --size 200 --redis "$redis"
bench baseline-2k baseline "${load[@]}" --size 2048 --redis "$redis"
bench baseline-webrtc baseline "${load[@]}" --mix webrtc --redis "$redis"

# Latency against offered load: an open-loop sweep up to past the closed loop's rate at 200 B.
max=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["throughput"]["delivered_per_s"]))' \
    "$out/raw/cluster-200.json" 2>/dev/null || echo 20000)
for pct in 10 25 50 70 85 100 115; do
    rate=$((max * pct / 100))
    [ "$rate" -ge 100 ] || rate=100
    bench "sweep-$pct" relay --pairs 50 --window 64 --warmup 1 --duration "$sweep_duration" \
        --size 200 --rate "$rate" --redis "$redis" "${urls[@]}"
done

# Idle connections: each count on a fresh clustered node, with relaying before and during.
for n in $conns; do
    start_node --redis "$redis"
    bench "conns-$n" conns --connections "$n" --sources 8 --concurrency 256 --timeout 30 \
        --relay-pairs 10 --window 4 --size 200 --warmup 1 --duration 4 --redis "$redis" \
        "ws://127.0.0.1:$node_port/ws"
    stop_pid "$node_pid"
done

python3 "$root/bench/summarize.py" "$out"
echo "wrote $out/latest.md" >&2
