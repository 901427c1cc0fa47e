/**
 * CQL on the command line: `ringkv query "<CQL>"` runs one statement and prints a table (every
 * page of a SELECT), or JSON with `--json`; `ringkv shell` is a cqlsh-like REPL: statements end
 * with `;` and may span lines, line history persists in a file (~/.ringkv_history by default),
 * `exit` / `quit` leave. Both go through the token-aware client (--socket, --host or --hosts).
 *
 * Exit status of `query`: 0 ok, 1 an error (printed as JSON on stderr, like put/get).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidArgumentError, type Command } from 'commander';
import type { QueryOptions, QueryResult, RingkvClient } from '../client/index.js';
import { onlyComments, splitStatements } from '../cql/index.js';
import { RingkvError } from '../util/errors.js';
import { addConnOptions, defined, fail, levelOf, withClient, type ConnOpts } from './data-commands.js';

/** Lines of shell history kept in the history file. */
const HISTORY_LINES = 1000;

type Row = QueryResult['rows'][number];

function cellText(v: Row[string]): string {
  return v === null || v === undefined ? 'null' : String(v);
}

/** Rows as an aligned text table (cqlsh style), with the row count below. */
export function formatTable(columns: readonly string[], rows: readonly Row[]): string {
  const cols = columns.length > 0 ? columns : [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => cols.map((c) => cellText(r[c] ?? null)));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: readonly string[]): string => ` ${vals.map((v, i) => v.padEnd(widths[i]!)).join(' | ')}`.trimEnd();
  const out = [line(cols), widths.map((w) => '-'.repeat(w + 2)).join('+')];
  for (const r of cells) out.push(line(r));
  out.push('', `(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`);
  return `${out.join('\n')}\n`;
}

interface QueryOpts extends ConnOpts {
  json?: boolean;
  pageSize?: number;
}

function queryOptions(o: QueryOpts): QueryOptions {
  return defined({ consistency: levelOf(o), pageSize: o.pageSize, timeoutMs: o.timeout }) as QueryOptions;
}

/** Run one statement, every page; print a table, or a JSON array (streamed page by page) with `json`. */
export async function runStatement(c: RingkvClient, cql: string, opts: QueryOptions, json: boolean, out: (s: string) => void): Promise<void> {
  let first = true;
  let columns: string[] = [];
  const rows: Row[] = [];
  let select = false;
  for await (const page of c.queryPages(cql, undefined, opts)) {
    if (!page.applied) select = true;
    columns = page.columns.length > 0 ? page.columns : columns;
    if (json) {
      if (!select) {
        out(`${JSON.stringify({ applied: page.applied })}\n`);
        return;
      }
      for (const r of page.rows) {
        out(`${first ? '[\n' : ',\n'}${JSON.stringify(r)}`);
        first = false;
      }
    } else for (const r of page.rows) rows.push(r);
  }
  if (json) out(first ? '[]\n' : '\n]\n');
  else out(select ? formatTable(columns, rows) : '(applied)\n');
}

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max}`);
    return Number(v);
  };
}

export function registerQueryCommands(program: Command): void {
  addConnOptions(
    program
      .command('query')
      .description('run one CQL statement; prints a SELECT as a table (all pages), or JSON with --json')
      .argument('<cql>', 'the statement, e.g. "SELECT * FROM users WHERE user_id = \'123\'"')
      .option('--json', 'print rows as a JSON array (or {"applied": true})')
      .option('--page-size <n>', 'rows fetched per page (default 5000)', intArg('--page-size', 1, 10_000)),
  ).action(async (cql: string, o: QueryOpts) => {
    await withClient(o, (c) => runStatement(c, cql, queryOptions(o), o.json === true, (s) => process.stdout.write(s)));
  });

  addConnOptions(
    program
      .command('shell')
      .description('an interactive CQL shell (cqlsh-like): statements end with ";" and may span lines; history is kept')
      .option('--history <file>', 'history file (default ~/.ringkv_history; "" to keep none)')
      .option('--json', 'print rows as JSON instead of tables'),
  ).action(async (o: ConnOpts & { history?: string; json?: boolean }) => {
    await withClient(o, (c) => runShell(c, { json: o.json === true, history: o.history ?? path.join(homedir(), '.ringkv_history'), opts: queryOptions(o) }));
  });
}

function loadHistory(file: string): string[] {
  if (file === '') return [];
  try {
    // readline wants the newest line first.
    return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_LINES).reverse();
  } catch {
    return [];
  }
}

function saveHistory(file: string, line: string): void {
  if (file === '' || line.trim() === '') return;
  try {
    appendFileSync(file, `${line.replace(/\n/g, ' ')}\n`);
    const all = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    if (all.length > 2 * HISTORY_LINES) writeFileSync(file, `${all.slice(-HISTORY_LINES).join('\n')}\n`);
  } catch {
    // A history that cannot be written is not worth failing the shell over.
  }
}

/** The REPL: reads lines, runs each statement once its `;` arrives, prints results and errors, never exits on an error. */
async function runShell(c: RingkvClient, s: { json: boolean; history: string; opts: QueryOptions }): Promise<void> {
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, history: loadHistory(s.history), historySize: HISTORY_LINES, prompt: 'ringkv> ' });
  const say = (t: string): void => void process.stdout.write(t);
  if (interactive) say('ringkv shell: end statements with ";"; "exit" leaves.\n');
  let pending = '';
  const prompt = (): void => {
    if (!interactive) return;
    rl.setPrompt(pending.trim() === '' ? 'ringkv> ' : '   ...> ');
    rl.prompt();
  };
  prompt();
  for await (const line of rl) {
    const word = line.trim().toLowerCase().replace(/;$/, '');
    if (pending.trim() === '' && (word === 'exit' || word === 'quit')) break;
    if (pending.trim() === '' && word === 'help') {
      say('Type CQL statements ending with ";" (CREATE/ALTER/DROP TABLE, INSERT, UPDATE, DELETE, SELECT). "exit" leaves.\n');
      prompt();
      continue;
    }
    if (interactive) saveHistory(s.history, line);
    pending += `${line}\n`;
    const { statements, rest } = splitStatements(pending);
    pending = onlyComments(rest) ? '' : rest;
    for (const stmt of statements) {
      try {
        await runStatement(c, stmt, s.opts, s.json, say);
      } catch (e) {
        const err = e instanceof RingkvError ? e : new RingkvError('internal', e instanceof Error ? e.message : String(e));
        say(`error (${err.code}): ${err.message}\n`);
        if (!interactive) process.exitCode = 1;
      }
    }
    prompt();
  }
  if (pending.trim() !== '') fail(new RingkvError('bad_request', `input ended inside a statement (missing ";"): ${pending.trim().slice(0, 80)}`));
  rl.close();
}
