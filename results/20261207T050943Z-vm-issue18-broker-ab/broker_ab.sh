#!/bin/bash
# Broker A/B: old (c58a48c) and new brokers side by side, 16 producers, inflight 1 and 16, both orders.
cd /work/ab18
for v in old new; do
  rm -rf /work/ab18/$v-store; mkdir -p /work/ab18/$v-store
  cat > $v.properties <<P
brokerClusterName=BenchCluster
brokerName=bench-$v
brokerId=0
listenPort=0
storePathRootDir=/work/ab18/$v-store
mappedFileSizeCommitLog=67108864
autoCreateTopicEnable=true
flushDiskType=ASYNC_FLUSH
brokerRole=ASYNC_MASTER
P
  /work/ab18/$v-bin/ferromq-broker --bind-address 127.0.0.1 -c $v.properties > $v-broker.out 2> $v-broker.err &
  echo $! > $v-broker.pid
done
sleep 3
port() { grep -ohE 'listening on [0-9.]+:[0-9]+' $1-broker.out $1-broker.err | head -1 | sed 's/listening on //'; }
OLD=$(port old); NEW=$(port new); echo "old=$OLD new=$NEW"
B=/work/ab18/new-bin/ferromq-bench
$B compare --a-broker $OLD --a-name old-c58a48c --b-broker $NEW --b-name new-issue18 --param inflight=1,16 --producers 16 --repeat 4 --seconds 4 --name issue18-broker-ab --out /work/ab18/results --quiet
$B compare --a-broker $NEW --a-name new-issue18 --b-broker $OLD --b-name old-c58a48c --param inflight=1,16 --producers 16 --repeat 4 --seconds 4 --name issue18-broker-ba --out /work/ab18/results --quiet
kill $(cat old-broker.pid) $(cat new-broker.pid)
echo finished
