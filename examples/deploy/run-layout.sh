#!/usr/bin/env bash
# Start or stop one of the seed's deployment modes on loopback:
#
#   examples/deploy/run-layout.sh <mode> start|stop|status
#
# <mode> is a folder next to this script: single-master, 2m-noslave,
# 2m-2s-async, 2m-2s-sync (the last one with two name servers, as in the seed),
# controller (three name servers with embedded controllers, RocketMQ 5
# controller mode, and two broker groups of three replicas: see its README.md).
# A mode folder with namesrv-N.properties files gives the name servers those
# files (listenPort replaced by NAMESRV_PORTS); otherwise they get listenPort
# and bindAddress=127.0.0.1 only.
# `start` starts the name servers, then the masters, then the slaves, each in the
# background with its log in $FERROMQ_RUN_DIR/logs/, and waits until each one
# listens. `stop` sends SIGTERM to the processes it started (their pids are in
# $FERROMQ_RUN_DIR/pids/), brokers first, waits for them to exit, and SIGKILLs
# what is still there after $FERROMQ_STOP_TIMEOUT seconds.
#
# Environment (all optional):
#   FERROMQ_BIN_DIR      directory with ferromq-namesrv and ferromq-broker
#                        (default: target/release of this repository; build it
#                        with `cargo build --release -p ferromq-server`)
#   FERROMQ_RUN_DIR      where stores, logs, generated configs and pids go; the
#                        brokers run there, so the relative store paths of the
#                        .properties files land in it (default: examples/deploy/run/<mode>)
#   NAMESRV_PORTS        name server ports, space-separated, one per name server
#                        (default: 9876, and 9877 for 2m-2s-sync; 9876 9866 9856
#                        for controller)
#   CONTROLLER_PORTS     controller mode only: the three controllers' ports,
#                        space-separated (default: those of controllerDLegerPeers
#                        in the files, 9878 9868 9858); replaces the ports of
#                        controllerDLegerPeers and the brokers' controllerAddr
#   BROKER_PORTS         broker ports, space-separated, in the order
#                        broker-a broker-b broker-a-s broker-b-s (those the mode
#                        has; controller: broker-a-0 broker-b-0 broker-a-1
#                        broker-b-1 broker-a-2 broker-b-2); default: listenPort
#                        of each file. A master also uses port + 1 for replication.
#   FERROMQ_START_TIMEOUT  seconds to wait for each process to listen (default 30)
#   FERROMQ_STOP_TIMEOUT   seconds to wait for each process to exit (default 20)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
    echo "usage: $0 single-master|2m-noslave|2m-2s-async|2m-2s-sync|controller start|stop|status" >&2
    exit 2
}

[ $# -eq 2 ] || usage
mode=$1
action=$2
conf="$here/$mode"
[ -d "$conf" ] || usage
case "$mode" in
    2m-2s-sync) default_ns="9876 9877" ;;
    controller) default_ns="9876 9866 9856" ;;
    *) default_ns="9876" ;;
esac

bin_dir=${FERROMQ_BIN_DIR:-$repo/target/release}
run_dir=${FERROMQ_RUN_DIR:-$here/run/$mode}
start_timeout=${FERROMQ_START_TIMEOUT:-30}
stop_timeout=${FERROMQ_STOP_TIMEOUT:-20}
read -r -a ns_ports <<< "${NAMESRV_PORTS:-$default_ns}"
read -r -a controller_ports <<< "${CONTROLLER_PORTS:-}"

# Masters first, so that slaves find their master at their first registration.
brokers=()
for b in broker-a broker-b broker-a-s broker-b-s \
    broker-a-0 broker-b-0 broker-a-1 broker-b-1 broker-a-2 broker-b-2; do
    [ -f "$conf/$b.properties" ] && brokers+=("$b")
done
read -r -a broker_ports <<< "${BROKER_PORTS:-}"
if [ ${#broker_ports[@]} -ne 0 ] && [ ${#broker_ports[@]} -ne ${#brokers[@]} ]; then
    echo "BROKER_PORTS needs ${#brokers[@]} ports for $mode (${brokers[*]})" >&2
    exit 2
fi

pid_alive() {
    kill -0 "$1" 2>/dev/null
}

# with_ports FILE: FILE with CONTROLLER_PORTS put into controllerDLegerPeers
# (nI-host:port, in order) and controllerAddr (host:port;..., in order).
with_ports() {
    if [ ${#controller_ports[@]} -eq 0 ]; then
        cat "$1"
        return
    fi
    local peers="" addrs="" i=0 port
    for port in "${controller_ports[@]}"; do
        peers+="${peers:+;}n$i-127.0.0.1:$port"
        addrs+="${addrs:+;}127.0.0.1:$port"
        i=$((i + 1))
    done
    sed -e "s/^controllerDLegerPeers=.*/controllerDLegerPeers=$peers/" \
        -e "s/^controllerAddr=.*/controllerAddr=$addrs/" "$1"
}

# wait_listening NAME LOG PID: until LOG has the "listening on" line.
wait_listening() {
    local name=$1 log=$2 pid=$3 waited=0
    while ! grep -q "listening on" "$log" 2>/dev/null; do
        if ! pid_alive "$pid"; then
            echo "$name exited during start; its log ($log):" >&2
            tail -n 20 "$log" >&2 || true
            return 1
        fi
        if [ "$waited" -ge $((start_timeout * 10)) ]; then
            echo "$name does not listen after ${start_timeout}s; its log ($log):" >&2
            tail -n 20 "$log" >&2 || true
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    grep -m1 "listening on" "$log"
}

start() {
    for exe in ferromq-namesrv ferromq-broker; do
        if [ ! -x "$bin_dir/$exe" ]; then
            echo "$bin_dir/$exe not found: run \`cargo build --release -p ferromq-server\` or set FERROMQ_BIN_DIR" >&2
            exit 1
        fi
    done
    mkdir -p "$run_dir/conf" "$run_dir/logs" "$run_dir/pids"
    for f in "$run_dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        if pid_alive "$(cat "$f")"; then
            echo "$mode already runs (pid file $f); stop it first" >&2
            exit 1
        fi
        rm -f "$f"
    done
    local addrs=() i=0
    for port in "${ns_ports[@]}"; do
        i=$((i + 1))
        local name="namesrv-$i"
        if [ -f "$conf/$name.properties" ]; then
            with_ports "$conf/$name.properties" \
                | sed "s/^listenPort=.*/listenPort=$port/" > "$run_dir/conf/$name.properties"
        else
            printf 'listenPort=%s\nbindAddress=127.0.0.1\n' "$port" > "$run_dir/conf/$name.properties"
        fi
        (cd "$run_dir" && exec "$bin_dir/ferromq-namesrv" -c "conf/$name.properties") \
            > "$run_dir/logs/$name.log" 2>&1 < /dev/null &
        echo $! > "$run_dir/pids/$name.pid"
        wait_listening "$name" "$run_dir/logs/$name.log" $! || { stop; exit 1; }
        addrs+=("127.0.0.1:$port")
    done
    local namesrv_addr
    namesrv_addr=$(IFS=';'; echo "${addrs[*]}")
    i=0
    for b in "${brokers[@]}"; do
        local cfg="$run_dir/conf/$b.properties"
        if [ ${#broker_ports[@]} -ne 0 ]; then
            with_ports "$conf/$b.properties" \
                | sed "s/^listenPort=.*/listenPort=${broker_ports[$i]}/" > "$cfg"
        else
            with_ports "$conf/$b.properties" > "$cfg"
        fi
        i=$((i + 1))
        (cd "$run_dir" && exec "$bin_dir/ferromq-broker" -n "$namesrv_addr" -c "conf/$b.properties" \
            --bind-address 127.0.0.1) > "$run_dir/logs/$b.log" 2>&1 < /dev/null &
        echo $! > "$run_dir/pids/$b.pid"
        wait_listening "$b" "$run_dir/logs/$b.log" $! || { stop; exit 1; }
    done
    echo "$mode started: name servers $namesrv_addr; logs in $run_dir/logs"
    echo "stop it with: $0 $mode stop"
}

# stop_one NAME: SIGTERM the process of pids/NAME.pid, wait, SIGKILL if needed.
stop_one() {
    local f="$run_dir/pids/$1.pid"
    [ -f "$f" ] || return 0
    local pid waited=0
    pid=$(cat "$f")
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        while pid_alive "$pid" && [ "$waited" -lt $((stop_timeout * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if pid_alive "$pid"; then
            echo "$1 (pid $pid) still runs after ${stop_timeout}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "$1 stopped"
    fi
    rm -f "$f"
}

stop() {
    # Slaves, then masters, then name servers (brokers unregister on SIGTERM).
    local i
    for ((i = ${#brokers[@]} - 1; i >= 0; i--)); do
        stop_one "${brokers[$i]}"
    done
    for ((i = ${#ns_ports[@]}; i >= 1; i--)); do
        stop_one "namesrv-$i"
    done
}

status() {
    local f any=0
    for f in "$run_dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        any=1
        local name pid
        name=$(basename "$f" .pid)
        pid=$(cat "$f")
        if pid_alive "$pid"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running (stale pid $pid)"
        fi
    done
    [ "$any" -eq 1 ] || echo "$mode: not started"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
