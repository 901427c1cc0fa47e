#!/usr/bin/env bash
# Single-node reference runs (bench/README.md runs 1 and 2). Output JSON + logs in $OUT.
set -u
cd /work/main
OUT=${OUT:-/tmp/rkref/out}; mkdir -p $OUT
R=node\ bin/ringkv.js
start_node() { # $1 = dir
  rm -rf $1; mkdir -p $1
  node bin/ringkv.js start --config config/default.json --data $1/data --http 127.0.0.1:17070 --peer 127.0.0.1:17000 --log-format json --log-level warn > $1/node.log 2>&1 &
  echo $! > $1/pid
  for i in $(seq 1 100); do curl -sf http://127.0.0.1:17070/healthz > /dev/null && return 0; sleep 0.2; done; echo "node did not start"; exit 1
}
stop_node() { kill $(cat $1/pid); wait $(cat $1/pid) 2>/dev/null; }
B=/tmp/rkref/single
# 1. ingest
start_node $B
node bin/ringkv.js bench --socket $B/data/ringkv.sock --workload ingest --operations 1000000 --batch 100 --concurrency 16 --value-size 100 --baseline rocksdb --baseline-dir $B --json $OUT/ingest.json --no-progress > $OUT/ingest.txt 2>&1
stop_node $B
# 2. A closed, C closed, A open at 50%, E
start_node $B
node bin/ringkv.js bench --socket $B/data/ringkv.sock --table ycsb --conflicts lww --workload a --records 1000000 --duration 30 --concurrency 64 --baseline rocksdb --baseline-dir $B --json $OUT/a-closed.json --no-progress > $OUT/a-closed.txt 2>&1
node bin/ringkv.js bench --socket $B/data/ringkv.sock --table ycsb --workload c --records 1000000 --skip-load --warmup 5 --duration 30 --concurrency 64 --baseline rocksdb --baseline-dir $B --json $OUT/c-closed.json --no-progress > $OUT/c-closed.txt 2>&1
PEAK=$(node -e "console.log(Math.round(require('$OUT/a-closed.json').throughput/2))")
echo "A open at $PEAK" > $OUT/a-open.rate
node bin/ringkv.js bench --socket $B/data/ringkv.sock --table ycsb --workload a --records 1000000 --skip-load --warmup 5 --duration 60 --rate $PEAK --baseline rocksdb --baseline-dir $B --json $OUT/a-open.json --no-progress > $OUT/a-open.txt 2>&1
node bin/ringkv.js bench --socket $B/data/ringkv.sock --table ycsb --workload e --records 1000000 --skip-load --warmup 5 --duration 30 --concurrency 16 --baseline rocksdb --baseline-dir $B --json $OUT/e-closed.json --no-progress > $OUT/e-closed.txt 2>&1
stop_node $B
echo single done
