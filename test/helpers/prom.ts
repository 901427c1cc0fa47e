/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4) for tests: every line is
 * HELP, TYPE, a sample or empty; every sample belongs to a family declared (HELP, then TYPE) before
 * it, each family once; label values unescaped; histogram buckets cumulative in `le` order and ending
 * in +Inf equal to `_count`. (parse-prometheus-text-format, tried first, merges the label sets of a
 * labelled histogram into one: useless for `ringkv_request_duration_seconds{op,consistency}`.)
 */

export interface PromSample {
  /** The series name: the family's, or with _bucket / _sum / _count. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: PromSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
// Values as Go's ParseFloat reads them (NaN and Inf in any case; prom-client writes "Nan").
const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Nn][Aa][Nn]|[+-]?[Ii]nf)$/;

function parseValue(s: string, where: string): number {
  if (!VALUE.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  if (/^[+-]?inf$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  return /^nan$/i.test(s) ? NaN : Number(s);
}

function parseLabels(s: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < s.length) {
    const at = LABEL.lastIndex;
    const m = LABEL.exec(s);
    if (!m || m.index !== at) throw new Error(`${where}: bad labels {${s}}`);
    if (m[1]! in out) throw new Error(`${where}: label ${m[1]} twice`);
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** Parse and check an exposition; throws naming the first line that breaks the format. */
export function parseExposition(text: string): PromFamily[] {
  const families = new Map<string, PromFamily>();
  let help: { name: string; text: string } | null = null;
  for (const [i, line] of text.split('\n').entries()) {
    const where = `line ${i + 1}`;
    if (line === '') continue;
    const h = /^# HELP (\S+) (.*)$/.exec(line);
    if (h) {
      if (families.has(h[1]!)) throw new Error(`${where}: family ${h[1]} declared twice`);
      help = { name: h[1]!, text: h[2]! };
      continue;
    }
    const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      if (help?.name !== t[1]) throw new Error(`${where}: TYPE of ${t[1]} without its HELP just before`);
      families.set(t[1]!, { name: t[1]!, help: help.text, type: t[2] as PromFamily['type'], samples: [] });
      continue;
    }
    if (line.startsWith('#')) throw new Error(`${where}: unexpected comment ${JSON.stringify(line)}`);
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`${where}: not a sample line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const suffixed = /^(.*)_(bucket|sum|count)$/.exec(name);
    const fam = families.get(name) ?? (suffixed ? families.get(suffixed[1]!) : undefined);
    if (!fam) throw new Error(`${where}: sample ${name} of no declared family`);
    if (fam.name !== name && fam.type !== 'histogram' && fam.type !== 'summary') throw new Error(`${where}: ${name} in a ${fam.type} family`);
    if (fam.type === 'histogram' && fam.name === name) throw new Error(`${where}: histogram sample without _bucket/_sum/_count`);
    fam.samples.push({ name, labels: parseLabels(m[2] ?? '', where), value: parseValue(m[3]!, where) });
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return [...families.values()];
}

function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
}

function checkHistogram(f: PromFamily): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const k = seriesKey(s.labels);
    let e = series.get(k);
    if (!e) series.set(k, (e = { buckets: [] }));
    if (s.name.endsWith('_bucket')) {
      if (s.labels['le'] === undefined) throw new Error(`${f.name}: bucket without le`);
      e.buckets.push([parseValue(s.labels['le'], f.name), s.value]);
    } else if (s.name.endsWith('_count')) e.count = s.value;
    else e.sum = s.value;
  }
  for (const [k, e] of series) {
    const b = [...e.buckets].sort((x, y) => x[0] - y[0]);
    if (b.length === 0 || b[b.length - 1]![0] !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`);
    for (let i = 1; i < b.length; i++) if (b[i]![1] < b[i - 1]![1]) throw new Error(`${f.name}${k}: buckets not cumulative at le=${b[i]![0]}`);
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${k}: _count or _sum missing`);
    if (b[b.length - 1]![1] !== e.count) throw new Error(`${f.name}${k}: +Inf bucket ${b[b.length - 1]![1]} differs from _count ${e.count}`);
  }
}

/**
 * The value of the first sample of `name` whose labels include `labels`, 0 when there is none (a
 * counter never incremented). For a histogram family, its `_count`.
 */
export function sampleValue(families: PromFamily[], name: string, labels: Record<string, string> = {}): number {
  const f = families.find((x) => x.name === name);
  if (!f) throw new Error(`no metric family ${name}`);
  const series = f.type === 'histogram' ? `${name}_count` : name;
  const s = f.samples.find((m) => m.name === series && Object.entries(labels).every(([k, v]) => m.labels[k] === v));
  return s ? s.value : 0;
}
