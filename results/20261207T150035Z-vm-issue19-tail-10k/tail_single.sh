#!/usr/bin/env bash
# Issue 19 item 4: send -> consume at an offered rate, one broker up at a
# time (fresh store per run), variants alternating; each run's JSON carries
# the loopback round trips measured right after it (back to back and paced).
# usage: tail_single.sh RATE REPEAT SECONDS OUTDIR VARIANTS...
set -euo pipefail
RATE=$1; REPEAT=$2; SECS=$3; OUT=$4; shift 4
B=/work/main/target/release/ferromq-bench
mkdir -p $OUT
W=$(mktemp -d /tmp/tail-single.XXXX)
trap 'pkill -f "ferromq-broker -c $W" 2>/dev/null || true; rm -rf $W' EXIT
for r in $(seq 1 $REPEAT); do
  for v in "$@"; do
    rm -rf $W/store; mkdir -p $W
    printf 'brokerName=%s\nlistenPort=10991\nstorePathRootDir=%s/store\nmappedFileSizeCommitLog=67108864\nautoCreateTopicEnable=true\n' $v $W > $W/broker.properties
    env $( [ $v = io1 ] && echo TOKIO_WORKER_THREADS=1 ) $( [ $v = exp ] && echo FERROMQ_EXP_SEND_INLINE=1 ) setsid /work/ab19/$( [ $v = io1 ] && echo new || echo $v )-bin/ferromq-broker -c $W/broker.properties > $W/broker.log 2>&1 &
    bpid=$!
    for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/10991) 2>/dev/null && break; sleep 0.1; done
    $B broker --broker 127.0.0.1:10991 --producers 1 --inflight 16 --consumers 1 --rate $RATE \
      --seconds $SECS --warmup-seconds 1 --queues 8 --json > $OUT/$v-$r.json 2>/dev/null || echo "run $v $r failed"
    kill $bpid; wait $bpid 2>/dev/null || true
  done
done
