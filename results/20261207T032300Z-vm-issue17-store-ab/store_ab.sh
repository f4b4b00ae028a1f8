#!/bin/bash
# Interleaved A/B of the README main command's suite: old (main 6f37928) and new (issue 17 merge).
cd /work/abtest
for i in 1 2 3 4; do
  for v in old new; do
    /work/$v-bin/ferromq-bench store --no-report --json > store-$v-$i.json 2> store-$v-$i.err
    echo "$v $i rc=$?" >> store_ab.log
  done
done
echo finished >> store_ab.log
