#!/bin/bash
# abba.sh TAG [extra flags]: plain, timer, timer, plain, twice; a fresh broker per run.
tag=$1; shift
i=0
for kind in plain timer timer plain plain timer timer plain; do
  i=$((i+1))
  if [ $kind = timer ]; then extra="--timer-delays 10s,90s,10m,1h"; else extra=""; fi
  ./run_one.sh "$tag-$i-$kind" --seconds 30 --warmup-seconds 1 $extra "$@"
done
