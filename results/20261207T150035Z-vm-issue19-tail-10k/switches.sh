#!/usr/bin/env bash
# Per-thread-group CPU ticks and context switches of a broker over one
# `ferromq-bench broker` run (how switches-new-10k.txt was made).
# usage: switches.sh BROKER_PID BROKER_ADDR   (50,000 messages: 10,000/s for 5 s)
set -euo pipefail
P=$1; ADDR=$2
snap() {
  for t in /proc/$P/task/*; do
    echo "$(basename $t) $(tr ' ' _ < $t/comm) $(awk '{print $14+$15}' $t/stat) $(awk '{print $14}' $t/stat) \
$(grep -E '^(voluntary|nonvoluntary)_ctxt' $t/status | awk '{s+=$2} END {print s}')"
  done | sort
}
snap > /tmp/switches.0
target/release/ferromq-bench broker --broker "$ADDR" --producers 1 --inflight 16 --consumers 1 \
  --rate 10000 --seconds 5 --warmup-seconds 0
snap > /tmp/switches.1
join /tmp/switches.0 /tmp/switches.1 | awk '{d=$7-$3; c=$9-$5; n[$2]+=c; t[$2]+=d}
  END {for (k in n) if (n[k]>500) printf "%-18s cpu %5.2f s  switches %7d  per msg %.2f\n", k, t[k]/100, n[k], n[k]/50000}' \
  | sort -k5 -n -r
