#!/usr/bin/env bash
# A local Switchboard cluster in the foreground: Redis (one redis-server, or a Redis Cluster of six),
# N nodes and HAProxy, in a temp dir.
#
#   deploy/local/cluster.sh [NODE_OPTION]...     (or: make cluster N=3 PORT=8080 REDIS=cluster)
#
# Environment (all optional):
#   REDIS=single     one redis-server (redis://); REDIS=cluster: a Redis Cluster of 3 masters and 3
#                    replicas (redis-cli --cluster create), each on its own free loopback port and
#                    cluster bus port, and the nodes on redis+cluster:// with the three masters as seeds
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
# Ctrl-C, SIGTERM or SIGHUP stops everything (the nodes first, with SIGINT and SIGKILL after
# 5 s, then HAProxy, then the redis-servers), removes the temp dir and exits 0. Nothing is persisted.
# A node that dies is reported and left dead; so is a redis-server of a Redis Cluster (a master's
# replica takes over). Losing HAProxy, the single redis-server, or every redis-server of the Redis
# Cluster ends the whole cluster.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: '&' in ${x//p/r} means the match

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

REDIS=${REDIS:-single}
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
# redis-server I (1, or 1..6 for a Redis Cluster) has its port, pid and role (master or replica,
# as last seen) at index I of redis_ports, redis_pids and redis_roles.
dir=
redis_ports=()
redis_pids=()
redis_roles=()
cli_pid=
haproxy_pid=
sleeper=
node_pids=()
node_ports=()
tail_pids=()

# ---- checks, before anything starts -------------------------------------------------------------

case $REDIS in
single) R=1 ;;
cluster) R=6 ;; # 3 masters with a replica each
*) die "REDIS must be single (one redis-server) or cluster (a Redis Cluster of 3 masters and 3 replicas), not '$REDIS'" ;;
esac
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
if [ "$REDIS" = cluster ]; then
    redis_cli=$(tool redis-cli) || die "redis-cli is missing (Debian: redis-tools): $missing"
    timeout=$(tool timeout) || die "timeout is missing (Debian: coreutils)"
fi
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

# free_port [COUNT]: COUNT (default 1) different loopback ports nobody holds now, one a line.
# Someone could take one before we bind it; the callers that can (redis) retry, the others fail
# clearly.
free_port() {
    "$python" -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    print(s.getsockname()[1])' "${1:-1}"
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

# redis_cmd PORT ARG...: a command to a redis-server of the Redis Cluster (redis-cli, at most 2 s);
# prints the reply as redis-cli does to a pipe (INFO's lines end in \r).
redis_cmd() {
    local port=$1
    shift
    "$timeout" 2 "$redis_cli" -h 127.0.0.1 -p "$port" "$@" </dev/null 2>/dev/null 3>&-
}

# field NAME TEXT: the value of the "NAME:value" line of an INFO or CLUSTER INFO reply.
field() {
    local line
    while IFS= read -r line; do
        line=${line%$'\r'}
        [[ $line == "$1:"* ]] && {
            printf '%s\n' "${line#*:}"
            return 0
        }
    done <<<"$2"
    return 1
}

# cluster_settled: whether every redis-server of the Redis Cluster says cluster_state:ok, knows
# all the others and sees every slot served, there are 3 masters, every replica's link to its
# master is up, and every one's CLUSTER NODES shows the same roles, none flagged failing. Fills
# redis_roles; if not settled, says why in $why.
cluster_settled() {
    local i j out v port flags role masters=0
    for ((i = 1; i <= R; i++)); do
        out=$(redis_cmd "${redis_ports[i]}" CLUSTER INFO) || {
            why="redis$i (port ${redis_ports[i]}) does not answer CLUSTER INFO"
            return 1
        }
        for v in cluster_state=ok cluster_slots_ok=16384 cluster_known_nodes=$R; do
            [ "$(field "${v%=*}" "$out")" = "${v#*=}" ] || {
                why="redis$i (port ${redis_ports[i]}) says ${v%=*}:$(field "${v%=*}" "$out")"
                return 1
            }
        done
        out=$(redis_cmd "${redis_ports[i]}" INFO replication) || {
            why="redis$i (port ${redis_ports[i]}) does not answer INFO replication"
            return 1
        }
        case $(field role "$out") in
        master)
            redis_roles[i]=master
            masters=$((masters + 1))
            ;;
        slave)
            redis_roles[i]=replica
            v=$(field master_link_status "$out")
            [ "$v" = up ] || {
                why="replica redis$i (port ${redis_ports[i]}) says master_link_status:$v"
                return 1
            }
            ;;
        *)
            why="redis$i (port ${redis_ports[i]}) says role:$(field role "$out")"
            return 1
            ;;
        esac
    done
    ((masters == 3)) || {
        why="$masters masters, not 3"
        return 1
    }
    # Each one's view of the others (gossip) agrees with what they say of themselves.
    for ((i = 1; i <= R; i++)); do
        out=$(redis_cmd "${redis_ports[i]}" CLUSTER NODES) || {
            why="redis$i (port ${redis_ports[i]}) does not answer CLUSTER NODES"
            return 1
        }
        while read -r _ port flags _; do
            port=${port%%@*}
            port=${port##*:}
            role=replica
            [[ ,$flags, == *,master,* ]] && role=master
            [[ $flags == *fail* || $flags == *handshake* || $flags == *noaddr* ]] && role=$flags
            for ((j = 1; j <= R; j++)); do
                [ "${redis_ports[j]}" = "$port" ] && [ "${redis_roles[j]}" != "$role" ] && {
                    why="redis$i (port ${redis_ports[i]}) sees redis$j (port $port) as $role"
                    return 1
                }
            done
        done <<<"$out"
    done
    return 0
}

# redis_role PORT: master or replica, as the redis-server on PORT says of itself (ROLE); fails if
# it does not answer within 2 s.
redis_role() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'ROLE\r\n' >&3
        # An array whose first element is the role: *3, $6, master.
        IFS= read -r -t 2 _ <&3 && IFS= read -r -t 2 _ <&3 && IFS= read -r -t 2 role <&3 || exit 1
        case ${role%$'\r'} in
        master) echo master ;;
        slave) echo replica ;;
        *) exit 1 ;;
        esac
    ) 2>/dev/null
}

# refresh_roles: asks every live redis-server of the Redis Cluster its role, and reports the
# changes (a replica that took over its master's slots, say).
refresh_roles() {
    local i role
    for ((i = 1; i <= R; i++)); do
        [ -n "${redis_pids[i]}" ] || continue
        role=$(redis_role "${redis_ports[i]}") || continue
        if [ "$role" != "${redis_roles[i]}" ]; then
            redis_roles[i]=$role
            say "redis$i (port ${redis_ports[i]}, pid ${redis_pids[i]}) is now a $role"
        fi
    done
}

# redis_name I, redis_log I, redis_dir I: what the messages call redis-server I, its log and its
# working directory: redis-server, redis.log and redis/ (single); redis1, redis1.log, redis1/ ..
# (cluster).
redis_name() { if [ "$REDIS" = cluster ]; then echo "redis$1"; else echo redis-server; fi; }
redis_log() { if [ "$REDIS" = cluster ]; then echo "$dir/redis$1.log"; else echo "$dir/redis.log"; fi; }
redis_dir() { if [ "$REDIS" = cluster ]; then echo "$dir/redis$1"; else echo "$dir/redis"; fi; }

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
    local rc=$? i left=() procs=() rprocs=()
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
    if [ -n "$cli_pid" ]; then # redis-cli --cluster create, cut short
        kill "$cli_pid" 2>/dev/null
        wait "$cli_pid" 2>/dev/null
    fi
    rprocs=()
    for i in "${!redis_pids[@]}"; do
        [ -n "${redis_pids[i]}" ] && rprocs+=("$(redis_name "$i")=${redis_pids[i]}")
    done
    if [ ${#rprocs[@]} -gt 0 ]; then
        if [ "$REDIS" = single ]; then say "stopping redis-server"; else say "stopping ${#rprocs[@]} redis-server(s)"; fi
        stop_all TERM "${rprocs[@]}"
    fi
    for i in "${tail_pids[@]}"; do kill "$i" 2>/dev/null && wait "$i" 2>/dev/null; done

    # Check that nothing of ours survived: each recorded process, then anything with one of our
    # redis ports or our config in its command line (a node started by hand against our Redis,
    # a redis-server restarted by hand in its directory, say).
    for i in "${procs[@]}" "haproxy=$haproxy_pid" "${rprocs[@]}"; do
        [ -n "${i#*=}" ] && alive "${i#*=}" && left+=("${i%%=*} (pid ${i#*=})")
    done
    if [ ${#redis_ports[@]} -gt 0 ]; then
        local ports
        ports=$(printf '%s|' "${redis_ports[@]}")
        for i in $(pgrep -f -- "(redis://|redis\+cluster://([^ ]*,)?|^[^ ]*redis-server )127\.0\.0\.1:(${ports%|})(,| |/|$)"); do
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
say "state in $dir"

# Every long-running process gets its own session (setsid), so a Ctrl-C reaches only this script,
# which stops them in order; they remain our children, so we reap them and know their pids.

# ---- redis-server -------------------------------------------------------------------------------

# launch_redis I PORT [BUS]: starts redis-server I on PORT (in a Redis Cluster, with its cluster
# bus on BUS: --cluster-port, as the default port+10000 may be taken or past 65535) in its own
# working directory; sets redis_ports[I] and redis_pids[I]. wait_redis waits for it.
launch_redis() {
    local i=$1 wd opts=()
    wd=$(redis_dir "$i")
    mkdir -p "$wd"
    [ "$REDIS" = cluster ] && opts=(--cluster-enabled yes --cluster-config-file nodes.conf
        --cluster-port "$3" --cluster-node-timeout 5000 --cluster-require-full-coverage no
        --repl-diskless-sync-delay 0)
    redis_ports[i]=$2
    setsid "$redis_server" --bind 127.0.0.1 --port "$2" --protected-mode yes \
        --save '' --appendonly no --dir "$wd" --daemonize no "${opts[@]}" \
        </dev/null >"$(redis_log "$i")" 2>&1 3>&- &
    redis_pids[i]=$!
}

# wait_redis I: waits for redis-server I's PING; one that found its port (or bus port) taken
# meanwhile is started again on others, up to 5 times in all.
wait_redis() {
    local i=$1 tries=1 name log ports
    name=$(redis_name "$i")
    log=$(redis_log "$i")
    until redis_ping "${redis_ports[i]}"; do
        if alive "${redis_pids[i]}"; then
            ((SECONDS < deadline)) || {
                show_log "$name" "$log"
                die "$name (port ${redis_ports[i]}) did not answer PING within ${READY_TIMEOUT}s"
            }
            sleep 0.1
            continue
        fi
        wait "${redis_pids[i]}" 2>/dev/null || true
        redis_pids[i]=
        grep -q 'Address already in use' "$log" 2>/dev/null || {
            show_log "$name" "$log"
            die "$name failed to start"
        }
        ((tries < 5)) || die "could not find a free port for $name"
        tries=$((tries + 1))
        say "a port of $name was taken meanwhile; trying another"
        mapfile -t ports < <(free_port 2)
        launch_redis "$i" "${ports[@]}"
    done
}

deadline=$((SECONDS + READY_TIMEOUT))
if [ "$REDIS" = single ]; then
    launch_redis 1 "$(free_port)"
    wait_redis 1
    redis_url="redis://127.0.0.1:${redis_ports[1]}"
    say "redis-server on $redis_url (pid ${redis_pids[1]}, no persistence)"
else
    mapfile -t ports < <(free_port $((2 * R))) # a port and a cluster bus port each
    for ((i = 1; i <= R; i++)); do launch_redis "$i" "${ports[2 * i - 2]}" "${ports[2 * i - 1]}"; done
    for ((i = 1; i <= R; i++)); do wait_redis "$i"; done
    say "$R redis-servers on ports ${redis_ports[*]}: redis-cli --cluster create (log: $dir/redis-cli.log)"
    addrs=()
    for ((i = 1; i <= R; i++)); do addrs+=("127.0.0.1:${redis_ports[i]}"); done
    # In the background, so that the deadline bounds it (it waits for the nodes to agree).
    setsid "$redis_cli" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        </dev/null >"$dir/redis-cli.log" 2>&1 3>&- &
    cli_pid=$!
    while alive "$cli_pid"; do
        ((SECONDS < deadline)) || {
            show_log "redis-cli --cluster create" "$dir/redis-cli.log"
            die "redis-cli --cluster create still running after ${READY_TIMEOUT}s"
        }
        sleep 0.1
    done
    wait "$cli_pid" && st=0 || st=$?
    cli_pid=
    if [ "$st" != 0 ] || ! grep -q 'All 16384 slots covered' "$dir/redis-cli.log"; then
        show_log "redis-cli --cluster create" "$dir/redis-cli.log"
        die "redis-cli --cluster create failed (status $st)"
    fi

    say "waiting for the Redis Cluster to settle (at most ${READY_TIMEOUT}s in all)"
    until cluster_settled; do
        for ((i = 1; i <= R; i++)); do
            alive "${redis_pids[i]}" || {
                show_log "redis$i" "$(redis_log "$i")"
                die "redis$i (port ${redis_ports[i]}) exited while the Redis Cluster formed"
            }
        done
        ((SECONDS < deadline)) || die "the Redis Cluster did not settle within ${READY_TIMEOUT}s: $why"
        sleep 0.2
    done
    redis_url=redis+cluster://
    for ((i = 1; i <= R; i++)); do
        [ "${redis_roles[i]}" = master ] && redis_url+="127.0.0.1:${redis_ports[i]},"
    done
    redis_url=${redis_url%,}
    say "Redis Cluster on $redis_url (3 masters, a replica each, no persistence)"
fi

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
    if [ "$REDIS" = single ]; then
        echo "REDIS_PID=${redis_pids[1]}"
    else
        for ((i = 1; i <= R; i++)); do
            echo "REDIS${i}_PORT=${redis_ports[i]}"
            echo "REDIS${i}_PID=${redis_pids[i]}"
            echo "REDIS${i}_ROLE=${redis_roles[i]}"
        done
    fi
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
if [ "$REDIS" = single ]; then
    echo "cluster:   redis    $redis_url  pid ${redis_pids[1]}  log $dir/redis.log"
else
    echo "cluster:   redis    $redis_url  (a Redis Cluster: the 3 masters, the nodes' seeds)"
    for ((i = 1; i <= R; i++)); do
        printf 'cluster:   redis%-3s 127.0.0.1:%s  %-7s  pid %s  log %s\n' "$i" "${redis_ports[i]}" \
            "${redis_roles[i]}" "${redis_pids[i]}" "$(redis_log "$i")"
    done
    echo "cluster:            its view: redis-cli -p ${redis_ports[1]} cluster nodes"
fi
cat <<EOF
cluster:   haproxy  config $dir/haproxy.cfg  log $dir/haproxy.log (errors: haproxy.err)$([ "$STATS" = 1 ] && printf '\ncluster:   stats    http://127.0.0.1:%s/' "$STATS_PORT")
cluster:   all of it in $dir/cluster.env
cluster: which node a client landed on: the "node" field of its welcome message (the demo shows it
cluster:   as "Node"); from a shell:
cluster:   /usr/bin/python3 -c 'import asyncio,websockets as w; l=asyncio.new_event_loop(); asyncio.set_event_loop(l); c=l.run_until_complete(w.connect("ws://$front:$PORT/ws")); print(l.run_until_complete(c.recv()))'
cluster: failover: kill -9 a node's pid; HAProxy marks it DOWN within about 2 s (see [haproxy] lines)
EOF
[ "$REDIS" = cluster ] &&
    echo "cluster: failover: kill -9 a master's pid; its replica takes over within about cluster-node-timeout (5 s) plus a second, and the nodes follow"
cat <<EOF
cluster: Ctrl-C stops everything and removes $dir

EOF

# ---- wait ---------------------------------------------------------------------------------------

# A node that dies is reported and left dead (HAProxy routes around it); so is a redis-server of
# the Redis Cluster (a master's replica takes over: refresh_roles reports it). Losing HAProxy, the
# single redis-server, or every redis-server of the Redis Cluster ends the cluster.
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
    if [ "$REDIS" = single ]; then
        alive "${redis_pids[1]}" || {
            show_log redis-server "$dir/redis.log"
            die "redis-server exited"
        }
    else
        live=0
        for ((i = 1; i <= R; i++)); do
            pid=${redis_pids[i]}
            [ -n "$pid" ] || continue
            if alive "$pid"; then
                live=$((live + 1))
                continue
            fi
            wait "$pid" 2>/dev/null && st=0 || st=$?
            redis_pids[i]=
            ((st > 128)) && st="signal $((st - 128))" || st="status $st"
            if [ "${redis_roles[i]}" = master ]; then
                say "redis$i (port ${redis_ports[i]}, master, pid $pid) exited ($st); its replica, if it has one left, takes over its slots within about cluster-node-timeout (5 s) plus a second"
            else
                say "redis$i (port ${redis_ports[i]}, replica, pid $pid) exited ($st); its master goes on without a replica"
            fi
        done
        ((live > 0)) || die "every redis-server of the Redis Cluster exited"
        refresh_roles
    fi
    sleep 1 3>&- &
    sleeper=$!
    wait "$sleeper" || true
    sleeper=
done 2>/dev/null # see fd 3 above
