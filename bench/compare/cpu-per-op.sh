#!/bin/bash
# CPU per op by thread: a fresh ringkv node (tree $1, built) and a Redis under the same `ringkv bench` load (issue 12).
# usage: bench/compare/cpu-per-op.sh [TREE] [OPS] [ROWS]   (needs redis-server and /usr/bin/time; uses ports 18480, 18481, 16390)
#   ROWS: any of writes-1op reads-1op redis ingest (default: the first three; ingest is batches of 100, 16 in flight, OPS*10 writes)
# Prints each thread of the node with its CPU ms over the run (the main thread is the router).
# NODE_FLAGS: node's flags for the server (default --single-threaded-gc, as src/cli/process-flags.ts).
tree=${1:-$(cd "$(dirname "$0")/../.." && pwd)}; ops=${2:-40000}; rows=${3:-writes-1op reads-1op redis}
cd $tree
tmp=$(mktemp -d /tmp/ringkv-cpu-XXXX)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
node ${NODE_FLAGS---single-threaded-gc} bin/ringkv.js start --config config/default.json --data $tmp/data --http 127.0.0.1:18480 --peer 127.0.0.1:18481 --log-format json --log-level warn >/dev/null 2>&1 &
npid=$!
rpid=
trap 'kill $npid $rpid 2>/dev/null' EXIT
# Poll readiness (bounded), not a fixed sleep: the node answers /readyz once it serves, Redis PING.
for i in $(seq 1 150); do curl -sf http://127.0.0.1:18480/readyz >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf http://127.0.0.1:18480/readyz >/dev/null || { echo "the node did not become ready" >&2; exit 1; }
redis-server --port 16390 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec --dir $tmp --daemonize no --loglevel warning >/dev/null 2>&1 &
rpid=$!
for i in $(seq 1 50); do redis-cli -p 16390 ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p 16390 ping >/dev/null 2>&1 || { echo "redis-server did not answer" >&2; exit 1; }
tasks() { for t in /proc/$1/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done; }
run() { # name, op count, bench args...
  local name=$1 n=$2; shift 2
  local n0=$(ticks $npid) r0=$(ticks $rpid)
  tasks $npid > $tmp/tasks0
  local t0=$(date +%s.%N)
  local out=$( { /usr/bin/time -f "GEN %U %S" node bin/ringkv.js bench --no-progress "$@" --json $tmp/j.json >/dev/null; } 2>&1 | grep GEN)
  local t1=$(date +%s.%N)
  local n1=$(ticks $npid) r1=$(ticks $rpid)
  tasks $npid > $tmp/tasks1
  join $tmp/tasks0 $tmp/tasks1 | awk -v n=$n '{d=($5-$3)*10; if (d>0) printf "   thread %s %s: %d ms (%.1f us/op)\n", $1, $2, d, d*1000/n}'
  echo "$name: node cpu $(( (n1-n0)*10 )) ms ($(awk -v d=$(( (n1-n0)*10 )) -v n=$n 'BEGIN {printf "%.1f", d*1000/n}') us/op), redis cpu $(( (r1-r0)*10 )) ms, generator $out (s), wall $(echo "$t1 - $t0" | bc) s, load $(cut -d' ' -f1 /proc/loadavg)"
}
has() { [[ " $rows " == *" $1 "* ]]; }
if has writes-1op; then run "ringkv writes-1op" $ops --socket $tmp/data/ringkv.sock --workload ingest --operations $ops --concurrency 50 --connections 50 --value-size 100 --threads 2; fi
if has reads-1op; then
  node bin/ringkv.js bench --no-progress --socket $tmp/data/ringkv.sock --workload c --records 20000 --operations 1 >/dev/null 2>&1  # load the keys, unmeasured
  run "ringkv reads-1op" $ops --socket $tmp/data/ringkv.sock --workload c --records 20000 --skip-load --operations $ops --concurrency 50 --connections 50 --threads 2
fi
if has redis; then run "redis  writes-1op" $ops --target redis --redis-url redis://127.0.0.1:16390 --workload ingest --operations $ops --concurrency 50 --connections 50 --value-size 100 --threads 2; fi
if has ingest; then run "ringkv ingest" $((ops * 10)) --socket $tmp/data/ringkv.sock --workload ingest --operations $((ops * 10)) --batch 100 --concurrency 16 --value-size 100 --threads 2; fi
kill $npid $rpid; wait $npid $rpid 2>/dev/null; rm -rf $tmp
