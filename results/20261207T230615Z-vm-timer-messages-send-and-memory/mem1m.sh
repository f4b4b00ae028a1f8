#!/bin/bash
# mem1m.sh: 1,000,000 messages on a fresh broker each, plain / timer (delays >= 30 min, all stay pending) / timer / plain.
i=0
for kind in plain timer timer plain; do
  i=$((i+1))
  if [ $kind = timer ]; then extra="--timer-delays 30m,45m,1h,2h"; else extra=""; fi
  SETTLE=15 ./run_one_settle.sh "m1m-$i-$kind" --messages 1000000 --seconds 600 --warmup-seconds 0 $extra
done
