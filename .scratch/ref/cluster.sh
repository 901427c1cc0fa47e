#!/usr/bin/env bash
# 3-node reference run (bench/README.md run 3).
set -u
cd /work/main
OUT=${OUT:-/tmp/rkref/out}; mkdir -p $OUT
C=/tmp/rkref/cluster
node bin/ringkv.js local-cluster stop --dir $C > /dev/null 2>&1; rm -rf $C
node bin/ringkv.js local-cluster start --nodes 3 --dir $C --http-base 27070 --peer-base 27000 > $OUT/c3-start.txt 2>&1 || { cat $OUT/c3-start.txt; exit 1; }
node bin/ringkv.js bench --socket $C/node1/ringkv.sock --table ycsb --conflicts lww --w 2 --r 2 --workload a --records 1000000 --duration 30 --concurrency 64 --baseline rocksdb --baseline-dir $C --json $OUT/c3-a-closed.json --no-progress > $OUT/c3-a-closed.txt 2>&1
PEAK=$(node -e "console.log(Math.round(require('$OUT/c3-a-closed.json').throughput/2))")
echo "A open at $PEAK" > $OUT/c3-a-open.rate
node bin/ringkv.js bench --socket $C/node1/ringkv.sock --table ycsb --w 2 --r 2 --workload a --records 1000000 --skip-load --warmup 5 --duration 60 --rate $PEAK --baseline rocksdb --baseline-dir $C --json $OUT/c3-a-open.json --no-progress > $OUT/c3-a-open.txt 2>&1
node bin/ringkv.js bench --socket $C/node1/ringkv.sock --table ingest3 --w 2 --workload ingest --operations 300000 --batch 100 --concurrency 16 --baseline rocksdb --baseline-dir $C --json $OUT/c3-ingest.json --no-progress > $OUT/c3-ingest.txt 2>&1
# Through one coordinator (node1's HTTP API, one request per op), N=3 W=2 / R=2
node bin/ringkv.js bench --http http://127.0.0.1:27071 --table http3 --w 2 --workload ingest --operations 60000 --concurrency 32 --json $OUT/c3-http-write.json --no-progress > $OUT/c3-http-write.txt 2>&1
node bin/ringkv.js bench --http http://127.0.0.1:27071 --table ycsb --r 2 --workload c --records 1000000 --skip-load --duration 20 --concurrency 32 --json $OUT/c3-http-read.json --no-progress > $OUT/c3-http-read.txt 2>&1
node bin/ringkv.js local-cluster stop --dir $C > /dev/null 2>&1
echo cluster done
