#!/bin/bash
# Interleaved A/B of the README main command's suite: old (c58a48c, before issue 18's restructure) and new.
cd /work/ab18
for i in 1 2 3 4 5 6 7 8; do
  for v in old new; do
    /work/ab18/$v-bin/ferromq-bench store --no-report --json > store-$v-$i.json 2> store-$v-$i.err
    echo "$v $i rc=$?" >> store_ab.log
  done
done
echo finished >> store_ab.log
