#!/usr/bin/env bash
# A peer broker to compare ferromq with: the Rust RocketMQ broker from
# crates.io (rocketmq-namesrv / rocketmq-broker 1.0.0, binaries
# rocketmq-namesrv-rust and rocketmq-broker-rust), installed outside the
# repository and run inside a network namespace that has only loopback
# (left alone, the broker dials a non-local address). Nothing in CI uses it.
#
#   peer-rocketmq-rust.sh install            # cargo install into $PEER_ROOT (~12 min, ~2 GB, 2 cores)
#   peer-rocketmq-rust.sh config <dir>       # write <dir>/namesrv.toml and <dir>/broker.toml
#   peer-rocketmq-rust.sh run <dir> -- CMD.. # root: unshare -n, lo up, start namesrv + broker,
#                                            # run CMD in the same namespace, stop both
#
# In `run`, CMD sees PEER_NAMESRV=127.0.0.1:9876 and PEER_BROKER=127.0.0.1:10911,
# e.g. (ferromq as A, started by the harness in the same namespace; the peer as B):
#
#   sudo bench-harness/scripts/peer-rocketmq-rust.sh run /var/tmp/peer -- \
#     sh -c 'target/release/ferromq-bench compare --a-props examples/broker-a.properties \
#            --a-name ferromq --b-namesrv "$PEER_NAMESRV" --b-name rocketmq-rust \
#            --param inflight=1,16,64 --param batch=1,16 --small-files --repeat 3 --seconds 5'
#
# Environment: PEER_ROOT (install root, default ~/.cache/ferromq-peer),
# PEER_VERSION (default 1.0.0), PEER_COMMITLOG_BYTES (commitlog file size,
# default 64 MiB like `--small-files`). Every address in the written configs
# is 127.0.0.1 (brokerIp1, brokerIp2, bindAddress, haListenAddress, namesrvAddr).
set -euo pipefail

PEER_ROOT=${PEER_ROOT:-$HOME/.cache/ferromq-peer}
PEER_VERSION=${PEER_VERSION:-1.0.0}
PEER_COMMITLOG_BYTES=${PEER_COMMITLOG_BYTES:-67108864}
NAMESRV_PORT=9876
BROKER_PORT=10911
HA_PORT=10912
START_DEADLINE_S=60

die() { echo "peer-rocketmq-rust: $*" >&2; exit 1; }
say() { echo "peer-rocketmq-rust: $*" >&2; }

install() {
    mkdir -p "$PEER_ROOT"
    case $PEER_ROOT in
    "$(git rev-parse --show-toplevel 2>/dev/null || echo /nonexistent)"/*)
        die "PEER_ROOT=$PEER_ROOT is inside the repository; put it outside (default ~/.cache/ferromq-peer)"
        ;;
    esac
    say "installing rocketmq-namesrv and rocketmq-broker $PEER_VERSION into $PEER_ROOT (nice 19; ~12 min, ~2 GB)"
    CARGO_TARGET_DIR=$PEER_ROOT/build nice -n 19 cargo install --root "$PEER_ROOT" \
        "rocketmq-namesrv@$PEER_VERSION" "rocketmq-broker@$PEER_VERSION"
    rm -rf "$PEER_ROOT/build"
    ls -l "$PEER_ROOT/bin"
}

bin() {
    local b=$PEER_ROOT/bin/$1
    [ -x "$b" ] || die "$b not found: run '$0 install' first"
    echo "$b"
}

config() {
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/namesrv.toml" <<EOF
# written by peer-rocketmq-rust.sh; address and port are given on the command line
rocketmqHome = "$dir"
kvConfigPath = "$dir/namesrv/kvConfig.json"
configStorePath = "$dir/namesrv/namesrv.properties"
EOF
    cat >"$dir/broker.toml" <<EOF
# written by peer-rocketmq-rust.sh: every address 127.0.0.1
[broker]
brokerIp1 = "127.0.0.1"
brokerIp2 = "127.0.0.1"
listenPort = $BROKER_PORT
storePathRootDir = "$dir/store"
namesrvAddr = "127.0.0.1:$NAMESRV_PORT"

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "peer-broker"
brokerClusterName = "PeerCluster"
brokerId = 0

[store]
storePathRootDir = "$dir/store"
haListenAddress = "127.0.0.1"
haListenPort = $HA_PORT
mappedFileSizeCommitLog = $PEER_COMMITLOG_BYTES
EOF
    say "wrote $dir/namesrv.toml and $dir/broker.toml"
}

wait_port() {
    local port=$1 pid=$2 what=$3 i
    for ((i = 0; i < START_DEADLINE_S * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "$what exited before listening on $port (see its log)"
        sleep 0.1
    done
    die "$what did not listen on 127.0.0.1:$port within ${START_DEADLINE_S} s"
}

# Runs inside the namespace.
inner() {
    local dir=$1
    shift
    ip link set lo up
    config "$dir" >/dev/null 2>&1
    rm -rf "$dir/store" "$dir/namesrv"
    mkdir -p "$dir/namesrv"
    local ns_pid broker_pid rc=0
    ROCKETMQ_HOME=$dir "$(bin rocketmq-namesrv-rust)" -c "$dir/namesrv.toml" \
        --listenPort "$NAMESRV_PORT" --bindAddress 127.0.0.1 >"$dir/namesrv.log" 2>&1 &
    ns_pid=$!
    trap 'kill "$broker_pid" "$ns_pid" 2>/dev/null; wait 2>/dev/null' EXIT
    broker_pid=$ns_pid
    wait_port "$NAMESRV_PORT" "$ns_pid" namesrv
    ROCKETMQ_HOME=$dir "$(bin rocketmq-broker-rust)" -c "$dir/broker.toml" \
        -n "127.0.0.1:$NAMESRV_PORT" >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    wait_port "$BROKER_PORT" "$broker_pid" broker
    say "namesrv 127.0.0.1:$NAMESRV_PORT and broker 127.0.0.1:$BROKER_PORT up (logs in $dir)"
    PEER_NAMESRV=127.0.0.1:$NAMESRV_PORT PEER_BROKER=127.0.0.1:$BROKER_PORT "$@" || rc=$?
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    kill "$ns_pid" 2>/dev/null || true
    wait "$ns_pid" 2>/dev/null || true
    trap - EXIT
    return "$rc"
}

cmd=${1:-}
case $cmd in
install) install ;;
config)
    [ -n "${2:-}" ] || die "usage: $0 config <dir>"
    config "$2"
    ;;
run)
    [ -n "${2:-}" ] || die "usage: $0 run <dir> -- CMD..."
    [ "$(id -u)" -eq 0 ] || die "run needs root (unshare -n)"
    dir=$2
    shift 2
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: $0 run <dir> -- CMD..."
    bin rocketmq-namesrv-rust >/dev/null
    bin rocketmq-broker-rust >/dev/null
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    exec unshare -n -- env PEER_ROOT="$PEER_ROOT" bash "$0" __inner "$dir" "$@"
    ;;
__inner)
    shift
    inner "$@"
    ;;
*) die "usage: $0 install | config <dir> | run <dir> -- CMD..." ;;
esac
