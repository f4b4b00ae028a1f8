#!/bin/bash
# abba16.sh: pipelined sends (--inflight 16), plain, timer, timer, plain; a fresh broker per run.
i=0
for kind in plain timer timer plain; do
  i=$((i+1))
  if [ $kind = timer ]; then extra="--timer-delays 10s,90s,10m,1h"; else extra=""; fi
  ./run_one.sh "p16-$i-$kind" --seconds 25 --warmup-seconds 1 --inflight 16 $extra
done
