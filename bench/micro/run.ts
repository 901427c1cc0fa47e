/**
 * Micro-benchmark entry point (`npm run bench:micro`, also `npm run bench`).
 *
 *   node dist/bench/micro/run.js [suite ...] [--time=MS] [--md] [--no-json]
 *
 * Suites: ring, ring-worker, versions (includes record), frames, shard, wide, crdt, merkle; default all. Prints one
 * table (ops/s, mean per op, per-call mean, p50 and p99), the side-by-side ratios, and writes
 * bench/results/micro-<YYYY-MM-DD>.json (a later run the same day replaces it). `--md` also prints
 * the table as Markdown (for bench/README.md). `--time` sets tinybench's minimum measuring time
 * per task (default 300 ms); the whole run takes ~30 s on a 2-core machine.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeRatios, DEFAULT_OPTIONS, fmtNs, fmtOps, sink, type RatioSpec, type Row, type SuiteOptions } from './harness.js';
import { ringRatios, ringSuite, ringWorkerSuite } from './ring.js';
import { versionRatios, versionsSuite } from './versions.js';
import { frameRatios, framesSuite } from './frames.js';
import { shardRatios, shardSuite } from './shard.js';
import { wideSuite } from './wide.js';
import { crdtRatios, crdtSuite } from './crdt.js';
import { merkleSuite } from './merkle.js';

const SUITES: Record<string, (o: SuiteOptions) => Promise<Row[]>> = {
  ring: ringSuite,
  'ring-worker': ringWorkerSuite,
  versions: versionsSuite,
  frames: framesSuite,
  shard: shardSuite,
  wide: wideSuite,
  crdt: crdtSuite,
  merkle: merkleSuite,
};
const RATIOS: RatioSpec[] = [...ringRatios, ...versionRatios, ...shardRatios, ...frameRatios, ...crdtRatios];

/** dist/bench/micro/run.js -> repository root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function parseArgs(argv: string[]): { suites: string[]; opts: SuiteOptions; md: boolean; json: boolean } {
  const suites: string[] = [];
  const opts = { ...DEFAULT_OPTIONS };
  let md = false;
  let json = true;
  for (const a of argv) {
    if (a === '--md') md = true;
    else if (a === '--no-json') json = false;
    else if (a.startsWith('--time=')) {
      const ms = Number(a.slice(7));
      if (!(ms > 0 && ms <= 5000)) throw new Error(`--time must be in (0, 5000] ms, got ${a.slice(7)}`);
      opts.timeMs = ms;
    } else if (a in SUITES) suites.push(a);
    else throw new Error(`unknown argument ${a}; suites: ${Object.keys(SUITES).join(', ')}; flags: --time=MS --md --no-json`);
  }
  return { suites: suites.length > 0 ? suites : Object.keys(SUITES), opts, md, json };
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

interface Cells {
  task: string;
  ops: string;
  mean: string;
  callMean: string;
  callP50: string;
  callP99: string;
  rme: string;
}

function cells(r: Row): Cells {
  return {
    task: `${r.suite}/${r.name}`,
    ops: fmtOps(r.opsPerSec),
    mean: fmtNs(r.meanNsPerOp),
    callMean: r.opsPerCall === 1 ? '' : `${fmtNs(r.callMeanNs)} /${r.opsPerCall}`,
    callP50: r.opsPerCall === 1 ? fmtNs(r.callP50Ns) : `${fmtNs(r.callP50Ns)} /${r.opsPerCall}`,
    callP99: r.opsPerCall === 1 ? fmtNs(r.callP99Ns) : `${fmtNs(r.callP99Ns)} /${r.opsPerCall}`,
    rme: `±${r.rme.toFixed(1)}%`,
  };
}

function printTable(rows: Row[]): void {
  const cs = rows.map(cells);
  const w = Math.max(4, ...cs.map((c) => c.task.length));
  const head = `${pad('task', w)}  ${pad('ops/s', 9, true)}  ${pad('mean/op', 10, true)}  ${pad('call mean', 16, true)}  ${pad('p50 (call)', 16, true)}  ${pad('p99 (call)', 16, true)}  ${pad('rme', 7, true)}`;
  console.log(head);
  console.log('-'.repeat(head.length));
  for (const c of cs) {
    console.log(`${pad(c.task, w)}  ${pad(c.ops, 9, true)}  ${pad(c.mean, 10, true)}  ${pad(c.callMean, 16, true)}  ${pad(c.callP50, 16, true)}  ${pad(c.callP99, 16, true)}  ${pad(c.rme, 7, true)}`);
  }
}

function printMarkdown(rows: Row[]): void {
  console.log('| task | ops/s | mean/op | p50 per call | p99 per call | ±rme |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const c = cells(r);
    console.log(`| ${c.task} | ${c.ops} | ${c.mean} | ${c.callP50} | ${c.callP99} | ${c.rme} |`);
  }
}

function tinybenchVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/tinybench/package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const { suites, opts, md, json } = parseArgs(process.argv.slice(2));
  const started = new Date();
  const load0 = os.loadavg();
  const t0 = performance.now();
  const rows: Row[] = [];
  for (const s of suites) {
    const ts = performance.now();
    process.stderr.write(`[bench] ${s} ...`);
    rows.push(...(await SUITES[s]!(opts)));
    process.stderr.write(` ${((performance.now() - ts) / 1000).toFixed(1)} s\n`);
  }
  const elapsedS = (performance.now() - t0) / 1000;
  const ratios = computeRatios(rows, RATIOS);
  const cpus = os.cpus();
  const meta = {
    date: started.toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    loadavgBefore: load0,
    loadavgAfter: os.loadavg(),
    tinybench: tinybenchVersion(),
    options: opts,
    elapsedSeconds: Number(elapsedS.toFixed(1)),
  };

  console.log(`\nringkv micro-benchmarks  ${meta.date}  node ${meta.node}  ${meta.cores} cores (${meta.cpuModel})  load ${load0.map((l) => l.toFixed(2)).join(' ')}\n`);
  printTable(rows);
  if (ratios.length > 0) {
    console.log('\nside by side (ops/s of the first / ops/s of the second):');
    const w = Math.max(...ratios.map((r) => r.label.length));
    for (const r of ratios) console.log(`  ${pad(r.label, w)}  ${r.ratio >= 10 ? r.ratio.toFixed(0) : r.ratio.toFixed(2)}x`);
  }
  if (md) {
    console.log('');
    printMarkdown(rows);
  }
  if (json) {
    const dir = path.join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `micro-${started.toISOString().slice(0, 10)}.json`);
    writeFileSync(file, JSON.stringify({ meta, rows, ratios }, null, 2) + '\n');
    console.log(`\nwrote ${path.relative(ROOT, file)} (${elapsedS.toFixed(1)} s)`);
  }
  // Keeps `sink` observable so no benchmarked result is dead code.
  if (sink.n === 0.5) console.log('');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
