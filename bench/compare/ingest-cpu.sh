#!/bin/bash
# CPU per batched write by thread (issue 12): a fresh ringkv node (tree $1, built) under `ringkv bench`
# ingest (batches of 100, 16 in flight, 100-byte values, OPS writes), each node thread's utime + stime
# from /proc before and after, and the generator's.
# usage: bench/compare/ingest-cpu.sh [TREE] [OPS]   (env PB: HTTP port, PB+1 the peer port, default 18490;
#        NODE_FLAGS: node's flags for the server, default --single-threaded-gc as src/cli/process-flags.ts)
# The first thread is the main thread (the router), the two busy ones the shards, the small ones V8's helpers.
tree=${1:-$(cd "$(dirname "$0")/../.." && pwd)}; ops=${2:-400000}; pb=${PB:-18490}
cd $tree
tmp=$(mktemp -d /tmp/ringkv-ingest-cpu-XXXX)
node ${NODE_FLAGS---single-threaded-gc} bin/ringkv.js start --config config/default.json --data $tmp/data --http 127.0.0.1:$pb --peer 127.0.0.1:$((pb+1)) --log-format json --log-level warn >/dev/null 2>&1 &
npid=$!
trap 'kill $npid 2>/dev/null; rm -rf $tmp' EXIT
# Poll readiness (bounded), not a fixed sleep.
for i in $(seq 1 150); do curl -sf http://127.0.0.1:$pb/readyz >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf http://127.0.0.1:$pb/readyz >/dev/null || { echo "the node did not become ready" >&2; exit 1; }
tasks() { for t in /proc/$1/task/*; do echo "$(basename $t) $(awk '{print $14+$15}' $t/stat)"; done; }
tasks $npid > $tmp/tasks0
t0=$(date +%s.%N)
gen=$( { /usr/bin/time -f "%U %S" node bin/ringkv.js bench --no-progress --socket $tmp/data/ringkv.sock --workload ingest --operations $ops --batch 100 --concurrency 16 --value-size 100 --threads 2 >/dev/null; } 2>&1 | tail -1)
t1=$(date +%s.%N)
tasks $npid > $tmp/tasks1
join $tmp/tasks0 $tmp/tasks1 | awk -v ops=$ops '{d=($3-$2)*10; s+=d; if (d>0) printf "   thread %s: %d ms (%.1f us/write)\n", $1, d, d*1000/ops} END {printf "node: %d ms (%.1f us/write)\n", s, s*1000/ops}'
echo "generator (incl. ~1 s start-up): $gen s user/sys; wall $(echo "$t1 - $t0" | bc) s; load $(cut -d' ' -f1 /proc/loadavg)"
