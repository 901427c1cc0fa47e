#!/usr/bin/env bash
# A open loop on the existing 1M-record single node dir; $1 = extra config json (optional), $2 = rate, $3 = tag
set -u
cd /work/main
B=/tmp/rkref/single
CFG=/tmp/rkref/cfg-$3.json
node -e "const d=require('./config/default.json'); Object.assign(d, JSON.parse(process.argv[1])); require('fs').writeFileSync('$CFG', JSON.stringify(d))" "${1:-{\}}"
node bin/ringkv.js start --config $CFG --data $B/data --http 127.0.0.1:17070 --peer 127.0.0.1:17000 --log-format json --log-level warn > $B/node-$3.log 2>&1 &
PID=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:17070/healthz > /dev/null && break; sleep 0.2; done
for i in $(seq 1 300); do curl -s http://127.0.0.1:17070/api/v1/ranges | grep -q '"ready":false' || break; sleep 0.5; done
echo "ranges ready after ~$((i/2)) s"; sleep 3
node bin/ringkv.js bench --socket $B/data/ringkv.sock --table ycsb --workload a --records 1000000 --skip-load --duration 30 --warmup 5 --rate $2 --no-progress --json /tmp/rkref/out/aopen-$3.json > /tmp/rkref/out/aopen-$3.txt 2>&1
kill $PID; wait $PID
grep -E "^ringkv  " /tmp/rkref/out/aopen-$3.txt
