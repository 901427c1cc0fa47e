/**
 * Summarize V8 .cpuprofile files (from `node --cpu-prof`, e.g. bench/compare.sh --profile DIR):
 * per thread, how busy it was, the GC share, and where the busy time went, by category and by
 * function (self time).
 *
 *   node dist/bench/compare/profile.js DIR_OR_FILES... [--top N]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Coarse buckets for "where does the main thread go". */
function category(f: CallFrame): string {
  const u = f.url;
  const n = f.functionName;
  if (n === '(garbage collector)') return 'gc';
  if (n === '(idle)') return 'idle';
  if (n === '(program)') return 'program (native, untracked)';
  if (u.includes('msgpackr')) return 'msgpack';
  if (u.includes('hdr-histogram')) return 'histogram';
  if (/worker|messageport|MessagePort/i.test(u + n) || n === 'postMessage' || n === 'emitMessage') return 'postMessage / ports';
  if (u.includes('node:net') || u.includes('node:internal/stream') || u.includes('stream_base') || u.includes('node:internal/net') || n === 'writeBuffer' || n === 'writev' || n === 'writeGeneric' || n === 'onStreamRead') return 'sockets / streams';
  if (u.includes('rocksdb') || n.startsWith('_getManySync') || n.startsWith('_writeSync') || n === 'batchWrite' || n === 'getManySync') return 'rocksdb';
  if (u.includes('/src/api/')) return 'ipc server (ringkv)';
  if (u.includes('/src/router/')) return 'router (ringkv)';
  if (u.includes('/src/versions/')) return 'versions / records (ringkv)';
  if (u.includes('/src/storage/') || u.includes('/workers/shard')) return 'storage / shard (ringkv)';
  if (u.includes('/src/merkle/') || u.includes('xxhash')) return 'merkle / hashing';
  if (u.includes('/src/net/')) return 'frames (ringkv)';
  if (u.includes('/src/client/') || u.includes('/src/bench/')) return 'client / generator';
  if (u.startsWith('node:') || u === '') return 'node internals / native';
  return 'other js';
}

function summarize(file: string, top: number): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = p.endTime - p.startTime;
  const cats = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const c = category(n.callFrame);
    cats.set(c, (cats.get(c) ?? 0) + us);
    if (c === 'idle') continue;
    const key = `${n.callFrame.functionName || '(anonymous)'} ${path.basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const idle = cats.get('idle') ?? 0;
  const busy = total - idle;
  const pct = (x: number, of: number): string => `${((100 * x) / of).toFixed(1)}%`;
  const lines = [`${path.basename(file)}: ${(total / 1e6).toFixed(1)} s, busy ${pct(busy, total)}, GC ${pct(cats.get('gc') ?? 0, busy)} of busy`];
  for (const [c, us] of [...cats].filter(([c]) => c !== 'idle').sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(us, busy).padStart(6)}  ${c}`);
  lines.push('  top functions (self time, % of busy):');
  for (const [f, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us, busy).padStart(6)}  ${f}`);
  return lines.join('\n');
}

function files(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (statSync(a).isDirectory()) {
      for (const f of readdirSync(a).sort()) {
        const full = path.join(a, f);
        if (statSync(full).isDirectory()) out.push(...files([full]));
        else if (f.endsWith('.cpuprofile')) out.push(full);
      }
    } else out.push(a);
  }
  return out;
}

const argv = process.argv.slice(2);
let top = 15;
const ti = argv.indexOf('--top');
if (ti >= 0) {
  top = Number(argv[ti + 1]);
  argv.splice(ti, 2);
}
for (const f of files(argv)) process.stdout.write(`${summarize(f, top)}\n\n`);
