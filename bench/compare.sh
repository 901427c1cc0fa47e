#!/usr/bin/env bash
# Issue 12's comparisons in one command: a fresh Redis 7 (AOF everysec) and fresh ringkv nodes on
# free loopback ports, every row through `ringkv bench` (ratios side by side in one run), repeated;
# prints medians and spreads and writes bench/results/compare-<date>.json.
#   bench/compare.sh            full sizes, 3 repeats (about 25 minutes on the 2-core VM)
#   bench/compare.sh --quick    small sizes, 1 repeat (a smoke run)
#   bench/compare.sh --help     every option
# Needs: node >= 20, redis-server and redis-cli on PATH (Debian: apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "compare.sh: redis-server not found (apt-get install redis-server)" >&2; exit 2; }
if [[ ! -f dist/bench/compare/run.js || -n "$(find src workers bench -name '*.ts' -newer dist/bench/compare/run.js -print -quit)" ]]; then
  npm run --silent build
fi
exec node dist/bench/compare/run.js "$@"
