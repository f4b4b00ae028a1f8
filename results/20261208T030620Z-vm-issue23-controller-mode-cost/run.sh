#!/usr/bin/env bash
# Issue 23's cost proof: classic replication (SYNC_MASTER + 2 slaves) against
# controller mode (3 replicas, allAckInSyncStateSet=true), the same producers,
# interleaved A B B A by `ferromq-bench compare --abba`.
#
#   results/<this folder>/run.sh [OUT_DIR]
#
# Release binaries from target/release (FERROMQ_BIN_DIR to change). Every
# process binds 127.0.0.1; ports are free ones picked at start; stores in a
# temporary directory, removed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${FERROMQ_BIN_DIR:-$repo/target/release}
out=${1:-$here}
mkdir -p "$out"
work=$(mktemp -d)
# Replicas per group (the master included): 3, or 2 to compare like with like
# (classic SYNC_MASTER waits for one slave, allAckInSyncStateSet for all).
REPLICAS=${REPLICAS:-3}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Ports with the next one free too (a classic master's HA port is listenPort + 1).
free_pair() {
    while :; do
        p=$(free_port)
        if python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$p+1))" 2>/dev/null; then echo "$p"; return; fi
    done
}
start() { # name cmd...
    local name=$1; shift
    "$@" > "$work/$name.log" 2>&1 &
    pids+=($!)
}
wait_listen() { # port
    for _ in $(seq 1 300); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "port $1 never listened" >&2; exit 1
}
common() { # store
    cat <<P
brokerClusterName=CostCluster
bindAddress=127.0.0.1
brokerIP1=127.0.0.1
storePathRootDir=$1
mapedFileSizeCommitLog=134217728
mapedFileSizeConsumeQueue=6000000
flushDiskType=ASYNC_FLUSH
autoCreateTopicEnable=true
defaultTopicQueueNums=4
diskMaxUsedSpaceRatio=95
diskSpaceCleanForciblyRatio=98
diskSpaceWarningLevelRatio=99
P
}

# A: classic, a SYNC_MASTER and two slaves.
ns_a=$(free_port); echo "listenPort=$ns_a" > "$work/ns-a.properties"; echo "bindAddress=127.0.0.1" >> "$work/ns-a.properties"
start ns-a "$bin/ferromq-namesrv" -c "$work/ns-a.properties"; wait_listen "$ns_a"
m=$(free_pair)
{ common "$work/a-0"; echo "brokerName=classic"; echo "brokerId=0"; echo "brokerRole=SYNC_MASTER"; echo "listenPort=$m"; echo "namesrvAddr=127.0.0.1:$ns_a"; } > "$work/a-0.properties"
start a-0 "$bin/ferromq-broker" -c "$work/a-0.properties"; wait_listen "$m"
for i in $(seq 1 $((REPLICAS - 1))); do
    p=$(free_pair)
    { common "$work/a-$i"; echo "brokerName=classic"; echo "brokerId=$i"; echo "brokerRole=SLAVE"; echo "listenPort=$p"; echo "haMasterAddress=127.0.0.1:$((m + 1))"; echo "namesrvAddr=127.0.0.1:$ns_a"; } > "$work/a-$i.properties"
    start "a-$i" "$bin/ferromq-broker" -c "$work/a-$i.properties"; wait_listen "$p"
done

# B: controller mode, three controllers and three replicas.
c0=$(free_port); c1=$(free_port); c2=$(free_port)
peers="n0-127.0.0.1:$c0;n1-127.0.0.1:$c1;n2-127.0.0.1:$c2"
for i in 0 1 2; do
    cp=$(eval echo "\$c$i")
    printf 'controllerDLegerGroup=CostGroup\ncontrollerDLegerPeers=%s\ncontrollerDLegerSelfId=n%s\ncontrollerStorePath=%s\n' \
        "$peers" "$i" "$work/controller-$i" > "$work/controller-$i.properties"
    start "controller-$i" "$bin/ferromq-controller" -c "$work/controller-$i.properties"; wait_listen "$cp"
done
ns_b=$(free_port); echo "listenPort=$ns_b" > "$work/ns-b.properties"; echo "bindAddress=127.0.0.1" >> "$work/ns-b.properties"
start ns-b "$bin/ferromq-namesrv" -c "$work/ns-b.properties"; wait_listen "$ns_b"
for i in $(seq 0 $((REPLICAS - 1))); do
    p=$(free_pair)
    { common "$work/b-$i"; echo "brokerName=controlled"; echo "enableControllerMode=true"; echo "controllerAddr=127.0.0.1:$c0;127.0.0.1:$c1;127.0.0.1:$c2"; echo "allAckInSyncStateSet=true"; echo "listenPort=$p"; echo "namesrvAddr=127.0.0.1:$ns_b"; } > "$work/b-$i.properties"
    start "b-$i" "$bin/ferromq-broker" -c "$work/b-$i.properties"; wait_listen "$p"
done

# Both groups whole: the classic master with two slaves, the controlled
# master with three in its SyncStateSet (the admin tool prints it).
for _ in $(seq 1 600); do
    n=$( ("$bin/ferromq-admin" getSyncStateSet -a "127.0.0.1:$c0" -b controlled 2>/dev/null || true) | sed -n 's/^#SyncStateSetNums\t//p')
    if [ "${n:-0}" -ge "$REPLICAS" ]; then break; fi
    sleep 0.2
done
"$bin/ferromq-admin" getSyncStateSet -a "127.0.0.1:$c0" -b controlled | tee "$out/sync-state-set.txt"
"$bin/ferromq-admin" -n "127.0.0.1:$ns_a" clusterList | tee "$out/classic-cluster.txt"

"$bin/ferromq-bench" compare --a-namesrv "127.0.0.1:$ns_a" --a-name classic \
    --b-namesrv "127.0.0.1:$ns_b" --b-name controller-mode \
    --abba --repeat "${REPEAT:-4}" --seconds "${SECONDS_PER_RUN:-20}" --warmup-seconds 3 \
    --producers "${PRODUCERS:-4}" --size 1024 --out "$out" --name "controller-mode-cost-${REPLICAS}-replicas" ${EXTRA_PARAMS:-}
