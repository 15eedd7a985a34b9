#!/usr/bin/env bash
# A local Switchboard cluster in the foreground: redis-server, N nodes and HAProxy, in a temp dir.
#
#   deploy/local/cluster.sh [NODE_OPTION]...     (or: make cluster N=3 PORT=8080)
#
# Environment (all optional):
#   N=3              nodes, named node1..nodeN, each on a free loopback port
#   PORT=8080        HAProxy's front port, the one clients use
#   BIND=0.0.0.0     HAProxy's front address (an IPv4 address; 127.0.0.1 keeps it on this machine)
#   STATS=1          HAProxy's stats page on a free loopback port (STATS=0: none; STATS_PORT to choose)
#   LOGS=1           tail every node's and HAProxy's log here, each line prefixed (LOGS=0: quiet)
#   READY_TIMEOUT=30 seconds to wait for redis, the nodes and HAProxy to be ready
#   SWITCHBOARD=build/switchboard   the node binary
# Arguments are extra options for every node (--log-level debug, --ice-servers JSON, ...); the
# SWITCHBOARD_* environment variables reach the nodes too.
#
# Ctrl-C, SIGTERM or SIGHUP stops everything (the nodes first, with SIGTERM and SIGKILL after
# 5 s, then HAProxy, then redis-server), removes the temp dir and exits 0. Nothing is persisted.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: '&' in ${x//p/r} means the match

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

N=${N:-3}
PORT=${PORT:-8080}
BIND=${BIND:-0.0.0.0}
STATS=${STATS:-1}
STATS_PORT=${STATS_PORT:-}
LOGS=${LOGS:-1}
READY_TIMEOUT=${READY_TIMEOUT:-30}
SWITCHBOARD=${SWITCHBOARD:-$root/build/switchboard}
node_args=("$@")

# fd 3 is the real stderr: the wait loop and cleanup send fd 2 to /dev/null, because bash reports
# on it every child killed by a signal ("line 396: 1234 Killed setsid ...") as it reaps it.
exec 3>&2
say() { printf 'cluster: %s\n' "$*"; }
die() {
    printf 'cluster: error: %s\n' "$*" >&3
    exit 1
}

# State, filled in as things start; cleanup() reads it, so it exists before the trap is set.
dir=
redis_port=
redis_pid=
haproxy_pid=
sleeper=
node_pids=()
node_ports=()
tail_pids=()

# ---- checks, before anything starts -------------------------------------------------------------

if ! [[ $N =~ ^[1-9][0-9]?$ ]] || ((N > 64)); then die "N must be a number from 1 to 64, not '$N'"; fi
if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65535)); then die "PORT must be 1-65535, not '$PORT'"; fi
[[ $BIND =~ ^[0-9]+(\.[0-9]+){3}$ ]] || die "BIND must be an IPv4 address (0.0.0.0 or 127.0.0.1), not '$BIND'"
[[ $READY_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "READY_TIMEOUT must be whole seconds, not '$READY_TIMEOUT'"

# Debian puts haproxy in /usr/sbin, which is not on every user's PATH.
tool() {
    local t
    for t in "$(command -v "$1" 2>/dev/null)" "/usr/sbin/$1" "/sbin/$1"; do
        [ -n "$t" ] && [ -x "$t" ] && {
            echo "$t"
            return 0
        }
    done
    return 1
}
missing="install it with: bash deploy/deps.sh test (or make cluster, which does)"
redis_server=$(tool redis-server) || die "redis-server is missing: $missing"
haproxy=$(tool haproxy) || die "haproxy is missing: $missing"
python=$(tool python3) || die "python3 is missing (used to find free ports): $missing"
for t in setsid tail sed; do tool "$t" >/dev/null || die "$t is missing (Debian: util-linux, coreutils, sed)"; done
[ -x "$SWITCHBOARD" ] || die "no node binary at $SWITCHBOARD: run make build"
help=$("$SWITCHBOARD" --help 2>&1 || true)
[[ $help == *--redis* ]] || die "$SWITCHBOARD has no --redis option: rebuild it (make build)"

# port_free HOST PORT: whether a listener could bind there now (with SO_REUSEADDR, as HAProxy
# does); if not, prints why.
port_free() {
    "$python" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print(e.strerror)
    sys.exit(1)' "$1" "$2"
}

# free_port: a loopback port nobody holds now. Someone could take it before we bind it; the
# callers that can (redis) retry, the others fail clearly.
free_port() {
    "$python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

why=$(port_free "$BIND" "$PORT") ||
    die "cannot listen on $BIND:$PORT: $why (make run or another cluster? choose another PORT=...)"
if [ "$STATS" = 1 ] && [ -n "$STATS_PORT" ]; then
    why=$(port_free 127.0.0.1 "$STATS_PORT") || die "cannot listen on 127.0.0.1:$STATS_PORT: $why"
fi

# ---- helpers ------------------------------------------------------------------------------------

# alive PID: the process runs (an exited child stays a zombie until reaped, and kill -0 works on it).
alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [ "${s%% *}" != Z ]
}

# http_status HOST PORT PATH: prints the status code of GET PATH, or fails (bash's /dev/tcp, no curl).
http_status() {
    (
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$3" >&3
        IFS=' ' read -r -t 2 _ code _ <&3 || exit 1
        echo "$code"
    ) 2>/dev/null
}

redis_ping() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [ "${reply%$'\r'}" = +PONG ]
    ) 2>/dev/null
}

# show_log NAME FILE: the end of a log, when something failed to start.
show_log() {
    [ -s "$2" ] || return 0
    {
        echo "---- last lines of $1's log ($2) ----"
        tail -n 20 "$2"
        echo "----"
    } >&3
}

# follow NAME FILE: copy a log to the terminal, each line prefixed with its name.
follow() {
    [ "$LOGS" = 1 ] || return 0
    tail --pid=$$ -n +1 -F "$2" 2>/dev/null 3>&- > >(sed -u "s/^/[$1] /") &
    tail_pids+=($!)
}

# stop_all SIGNAL NAME=PID...: SIGNAL to all at once, SIGKILL to those still running after 5 s;
# reaps them. Nodes get INT (close every client now): TERM would drain them for --drain-delay
# plus --drain-seconds, which is for stopping one node of a cluster that goes on.
stop_all() {
    local each pid i left sig=$1
    shift
    for each in "$@"; do kill -"$sig" "${each#*=}" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for each in "$@"; do alive "${each#*=}" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for each in "$@"; do
        pid=${each#*=}
        if alive "$pid"; then
            say "${each%%=*} (pid $pid) did not stop within 5 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$? i left=() procs=()
    set +e
    trap '' INT TERM HUP # a second Ctrl-C must not leave half the cluster running
    exec 2>/dev/null     # see fd 3 above
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    for i in "${!node_pids[@]}"; do
        [ -n "${node_pids[i]}" ] && procs+=("node$i=${node_pids[i]}")
    done
    # Nodes first, while HAProxy still carries their 1001 close frames to the clients.
    [ ${#procs[@]} -gt 0 ] && say "stopping ${#procs[@]} node(s)" && stop_all INT "${procs[@]}"
    [ -n "$haproxy_pid" ] && say "stopping haproxy" && stop_all TERM "haproxy=$haproxy_pid"
    [ -n "$redis_pid" ] && say "stopping redis-server" && stop_all TERM "redis-server=$redis_pid"
    for i in "${tail_pids[@]}"; do kill "$i" 2>/dev/null && wait "$i" 2>/dev/null; done

    # Check that nothing of ours survived: each recorded process, then anything with our
    # redis port or config in its command line (a node started by hand against this redis, say).
    for i in "${procs[@]}" "haproxy=$haproxy_pid" "redis-server=$redis_pid"; do
        [ -n "${i#*=}" ] && alive "${i#*=}" && left+=("${i%%=*} (pid ${i#*=})")
    done
    if [ -n "$redis_port" ]; then
        for i in $(pgrep -f -- "redis://127\.0\.0\.1:$redis_port( |/|$)") \
            $(pgrep -f -- "^[^ ]*redis-server 127\.0\.0\.1:$redis_port( |$)"); do
            left+=("$(ps -o args= -p "$i") (pid $i)")
        done
    fi
    if [ -n "$dir" ]; then
        for i in $(pgrep -f -- "$dir/haproxy\.cfg"); do left+=("haproxy (pid $i)"); done
    fi
    if [ ${#left[@]} -gt 0 ]; then
        say "warning: still running: ${left[*]}" >&3
        rc=1
    fi
    if [ -n "$dir" ]; then
        rm -rf -- "$dir"
        say "removed $dir"
    fi
    [ "$rc" = 0 ] && say "stopped; nothing left running"
    exit "$rc"
}

on_signal() {
    echo
    say "$1: stopping the cluster"
    exit 0
}

trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP

dir=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-cluster.XXXXXX")
mkdir "$dir/redis"
say "state in $dir"

# Every long-running process gets its own session (setsid), so a Ctrl-C reaches only this script,
# which stops them in order; they remain our children, so we reap them and know their pids.

# ---- redis-server -------------------------------------------------------------------------------

deadline=$((SECONDS + READY_TIMEOUT))
for _ in 1 2 3 4 5; do
    redis_port=$(free_port)
    setsid "$redis_server" --bind 127.0.0.1 --port "$redis_port" --protected-mode yes \
        --save '' --appendonly no --dir "$dir/redis" --daemonize no \
        </dev/null >"$dir/redis.log" 2>&1 3>&- &
    redis_pid=$!
    until redis_ping "$redis_port"; do
        if ! alive "$redis_pid" || ((SECONDS >= deadline)); then break; fi
        sleep 0.1
    done
    redis_ping "$redis_port" && break
    if alive "$redis_pid"; then
        show_log redis-server "$dir/redis.log"
        die "redis-server did not answer PING within ${READY_TIMEOUT}s"
    fi
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
    grep -q 'Address already in use' "$dir/redis.log" 2>/dev/null || {
        show_log redis-server "$dir/redis.log"
        die "redis-server failed to start"
    }
    say "port $redis_port was taken meanwhile; trying another"
done
[ -n "$redis_pid" ] || die "could not find a free port for redis-server"
redis_url="redis://127.0.0.1:$redis_port"
say "redis-server on $redis_url (pid $redis_pid, no persistence)"

# ---- nodes --------------------------------------------------------------------------------------

# Each node picks its own free port (--listen 127.0.0.1:0) and logs it; no race to lose.
for ((i = 1; i <= N; i++)); do
    setsid "$SWITCHBOARD" --listen 127.0.0.1:0 --redis "$redis_url" --node-id "node$i" \
        --trust-proxy 127.0.0.1 "${node_args[@]}" </dev/null >"$dir/node$i.log" 2>&1 3>&- &
    node_pids[i]=$!
    node_ports[i]=
done

for ((i = 1; i <= N; i++)); do
    while :; do
        line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$dir/node$i.log" 2>/dev/null || true)
        [ -n "$line" ] && break
        if ! alive "${node_pids[i]}"; then
            wait "${node_pids[i]}" 2>/dev/null && st=0 || st=$?
            node_pids[i]=
            show_log "node$i" "$dir/node$i.log"
            die "node$i exited during start-up (status $st)"
        fi
        ((SECONDS < deadline)) || {
            show_log "node$i" "$dir/node$i.log"
            die "node$i did not log its port within ${READY_TIMEOUT}s"
        }
        sleep 0.1
    done
    node_ports[i]=${line##*:}
    follow "node$i" "$dir/node$i.log"
done

say "waiting for the nodes to be ready (GET /readyz, at most ${READY_TIMEOUT}s)"
for ((i = 1; i <= N; i++)); do
    until [ "$(http_status 127.0.0.1 "${node_ports[i]}" /readyz)" = 200 ]; do
        if ! alive "${node_pids[i]}" || ((SECONDS >= deadline)); then
            show_log "node$i" "$dir/node$i.log"
            alive "${node_pids[i]}" || die "node$i exited before it was ready"
            die "node$i (port ${node_ports[i]}) not ready within ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
done

# ---- HAProxy ------------------------------------------------------------------------------------

servers=
for ((i = 1; i <= N; i++)); do
    servers+="    server node$i 127.0.0.1:${node_ports[i]}"$'\n'
done
servers=${servers%$'\n'}
cfg=$(<"$here/haproxy.cfg.in")
if [ "$STATS" = 1 ]; then
    [ -n "$STATS_PORT" ] || STATS_PORT=$(free_port)
    cfg=${cfg//@STATS_PORT@/"$STATS_PORT"}
else
    cfg=$(sed '/^#@STATS_BEGIN@$/,/^#@STATS_END@$/d' <<<"$cfg")
fi
cfg=${cfg//@BIND@/"$BIND"}
cfg=${cfg//@PORT@/"$PORT"}
cfg=${cfg//@SERVERS@/"$servers"}
printf '%s\n' "$cfg" >"$dir/haproxy.cfg"
"$haproxy" -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.err" 2>&1 || {
    show_log haproxy "$dir/haproxy.err"
    die "HAProxy rejected the generated $dir/haproxy.cfg"
}

# -db: foreground, no daemon. Its log (requests, servers going DOWN and UP) is on stdout; stderr
# repeats the warnings among it, so it goes to a file of its own, shown if HAProxy fails.
setsid "$haproxy" -db -f "$dir/haproxy.cfg" </dev/null >"$dir/haproxy.log" 2>"$dir/haproxy.err" 3>&- &
haproxy_pid=$!
follow haproxy "$dir/haproxy.log"
front=127.0.0.1
[ "$BIND" = 0.0.0.0 ] || front=$BIND
until [ "$(http_status "$front" "$PORT" /readyz)" = 200 ]; do
    alive "$haproxy_pid" || {
        show_log haproxy "$dir/haproxy.err"
        die "haproxy exited during start-up"
    }
    ((SECONDS < deadline)) || die "HAProxy on $BIND:$PORT not answering within ${READY_TIMEOUT}s"
    sleep 0.2
done

# ---- ready --------------------------------------------------------------------------------------

{
    echo "CLUSTER_DIR=$dir"
    echo "FRONT_URL=http://$front:$PORT/"
    echo "REDIS_URL=$redis_url"
    echo "REDIS_PID=$redis_pid"
    echo "HAPROXY_PID=$haproxy_pid"
    [ "$STATS" = 1 ] && echo "STATS_URL=http://127.0.0.1:$STATS_PORT/"
    for ((i = 1; i <= N; i++)); do
        echo "NODE${i}_PORT=${node_ports[i]}"
        echo "NODE${i}_PID=${node_pids[i]}"
    done
} >"$dir/cluster.env"

shown=localhost
[ "$BIND" = 0.0.0.0 ] || shown=$BIND
cat <<EOF

cluster: ready: http://$shown:$PORT/   (WebSocket: ws://$shown:$PORT/ws)
cluster:   HAProxy on $BIND:$PORT, round robin over $N node(s); a node whose /readyz fails gets no new connections
EOF
for ((i = 1; i <= N; i++)); do
    printf 'cluster:   node%-3s http://127.0.0.1:%s/  pid %s  log %s\n' "$i" "${node_ports[i]}" \
        "${node_pids[i]}" "$dir/node$i.log"
done
cat <<EOF
cluster:   redis    $redis_url  pid $redis_pid  log $dir/redis.log
cluster:   haproxy  config $dir/haproxy.cfg  log $dir/haproxy.log (errors: haproxy.err)$([ "$STATS" = 1 ] && printf '\ncluster:   stats    http://127.0.0.1:%s/' "$STATS_PORT")
cluster:   all of it in $dir/cluster.env
cluster: which node a client landed on: the "node" field of its welcome message (the demo shows it
cluster:   as "Node"); from a shell:
cluster:   /usr/bin/python3 -c 'import asyncio,websockets as w; l=asyncio.new_event_loop(); asyncio.set_event_loop(l); c=l.run_until_complete(w.connect("ws://$front:$PORT/ws")); print(l.run_until_complete(c.recv()))'
cluster: failover: kill -9 a node's pid; HAProxy marks it DOWN within about 2 s (see [haproxy] lines)
cluster: Ctrl-C stops everything and removes $dir

EOF

# ---- wait ---------------------------------------------------------------------------------------

# A node that dies is reported and left dead (HAProxy routes around it); losing redis-server or
# HAProxy ends the cluster.
while :; do
    for ((i = 1; i <= N; i++)); do
        pid=${node_pids[i]}
        if [ -n "$pid" ] && ! alive "$pid"; then
            wait "$pid" 2>/dev/null && st=0 || st=$?
            node_pids[i]=
            ((st > 128)) && st="signal $((st - 128))" || st="status $st"
            say "node$i (pid $pid) exited ($st); HAProxy sends new connections to the others"
        fi
    done
    alive "$haproxy_pid" || {
        show_log haproxy "$dir/haproxy.err"
        die "haproxy exited"
    }
    alive "$redis_pid" || {
        show_log redis-server "$dir/redis.log"
        die "redis-server exited"
    }
    sleep 1 3>&- &
    sleeper=$!
    wait "$sleeper" || true
    sleeper=
done 2>/dev/null # see fd 3 above
