#!/bin/bash
# run_one.sh NAME [ferromq-bench broker flags...]
# Starts a fresh ferromq-namesrv + ferromq-broker (props: timer.properties beside
# this script, store in ./store-NAME), runs `ferromq-bench broker --json` against
# it with the given flags, prints the JSON line, stops the broker and deletes
# its store.
set -u
BIN=${BIN:-/work/wt/target-benchtimer/release}
HERE=$(cd "$(dirname "$0")" && pwd)
name=$1; shift
d=$HERE/run-$name
rm -rf "$d"; mkdir -p "$d"
printf 'listenPort=0\nbindAddress=127.0.0.1\n' > "$d/namesrv.properties"
{ cat "$HERE/timer.properties"; printf 'brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort=0\nstorePathRootDir=%s/store\n' "$d"; } > "$d/broker.properties"
RUST_LOG=warn "$BIN/ferromq-namesrv" -c "$d/namesrv.properties" > "$d/namesrv.out" 2>&1 &
ns=$!
for i in $(seq 1 100); do grep -q "listening on" "$d/namesrv.out" && break; sleep 0.1; done
nsport=$(grep -o "listening on [0-9.]*:[0-9]*" "$d/namesrv.out" | head -1 | sed 's/.*://')
RUST_LOG=warn "$BIN/ferromq-broker" -c "$d/broker.properties" --bind-address 127.0.0.1 -n "127.0.0.1:$nsport" > "$d/broker.out" 2>&1 &
br=$!
for i in $(seq 1 300); do grep -q "listening on" "$d/broker.out" && break; sleep 0.1; done
bport=$(grep -o "listening on [0-9.]*:[0-9]*" "$d/broker.out" | head -1 | sed 's/.*://')
sleep 1
grep -E "^(VmRSS|RssAnon|VmHWM)" /proc/$br/status | tr -s ' \t' ' ' | tr '\n' ' ' > "$d/idle_mem.txt"
timeout 900 "$BIN/ferromq-bench" broker --broker "127.0.0.1:$bport" ${JSONFLAG---json} "$@" > "$d/out.json" 2> "$d/bench.err"
rc=$?
grep -E "^(VmRSS|RssAnon|VmHWM)" /proc/$br/status | tr -s ' \t' ' ' | tr '\n' ' ' > "$d/after_mem.txt"
du -sh "$d/store" > "$d/store_du.txt" 2>/dev/null
kill $br; for i in $(seq 1 100); do kill -0 $br 2>/dev/null || break; sleep 0.1; done; kill -9 $br 2>/dev/null
kill $ns; wait $ns 2>/dev/null
rm -rf "$d/store"
echo "== $name rc=$rc idle: $(cat $d/idle_mem.txt) after: $(cat $d/after_mem.txt) store: $(cat $d/store_du.txt)"
cat "$d/out.json"
