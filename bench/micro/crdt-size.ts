/**
 * State size growth of the convergent data types per 1,000 operations:
 *
 *   node dist/bench/micro/crdt-size.js [--ops=N]   (default 10,000 operations per workload)
 *
 * Prints, per workload, the growth over the first 1,000 operations, the mean growth per 1,000
 * operations after that, and the encoded state size after every 1,000 operations (three coordinating replicas that sync every 10 operations;
 * see crdtSizeGrowth in crdt.ts).
 */
import { crdtSizeGrowth } from './crdt.js';

function main(): void {
  let ops = 10_000;
  for (const a of process.argv.slice(2)) {
    if (a.startsWith('--ops=') && Number(a.slice(6)) >= 1000 && Number(a.slice(6)) <= 100_000) ops = Math.floor(Number(a.slice(6)) / 1000) * 1000;
    else throw new Error(`unknown argument ${a}; flags: --ops=N (1000..100000)`);
  }
  const rows = crdtSizeGrowth(ops);
  const w = Math.max(...rows.map((r) => r.workload.length));
  console.log(`${'workload'.padEnd(w)}  per 1k ops, first 1k / after that  bytes after 0, 1k, 2k, ... ops`);
  for (const r of rows) {
    const first = r.bytes[1]! - r.bytes[0]!;
    const later = (r.bytes[r.bytes.length - 1]! - r.bytes[1]!) / (r.bytes.length - 2);
    console.log(`${r.workload.padEnd(w)}  ${`${first} B / ${later.toFixed(0)} B`.padStart(32)}  ${r.bytes.join(' ')}`);
  }
}

main();
