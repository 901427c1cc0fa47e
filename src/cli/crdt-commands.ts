/**
 * CLI commands for table definitions and convergent data types (issue 14), through the
 * token-aware client (IPC socket, or the peer port with --host / --hosts):
 *
 *   ringkv table likes --conflicts crdt --type counter       define a table (prints the definition)
 *   ringkv crdt update likes post:1 '{"increment": 1}'       apply an operation (prints the new value)
 *   ringkv crdt get likes post:1                             read value + context (exit 3 when absent)
 *
 * An update is sent once: a failure with `details.outcome` "unknown" may or may not have been
 * applied, and the CLI does not resend it (an increment would count twice).
 */
import { Option, type Command } from 'commander';
import { RingkvError } from '../util/errors.js';
import { addConnOptions, defined, EXIT_NOT_FOUND, intArg, levelOf, withClient, type ConnOpts } from './data-commands.js';

function parseOperation(text: string): Record<string, unknown> {
  let op: unknown;
  try {
    op = JSON.parse(text);
  } catch (e) {
    throw new RingkvError('bad_request', `the operation must be JSON, e.g. '{"increment": 1}': ${(e as Error).message}`, { field: 'operation' });
  }
  if (typeof op !== 'object' || op === null || Array.isArray(op)) throw new RingkvError('bad_request', 'the operation must be a JSON object, e.g. \'{"add": ["a"]}\'', { field: 'operation' });
  return op as Record<string, unknown>;
}

export function registerCrdtCommands(program: Command): void {
  addConnOptions(
    program
      .command('table')
      .description('define TABLE (create it, or change its n / quorum); prints the definition as JSON')
      .argument('<table>')
      .addOption(new Option('--conflicts <mode>', 'conflict mode').choices(['vclock', 'lww', 'crdt']))
      .addOption(new Option('--type <type>', 'with --conflicts crdt: the data type of every key').choices(['counter', 'set', 'map', 'register', 'flag']))
      .option('--n <n>', 'replicas per key', intArg('--n', 1, 5))
      .addOption(new Option('--quorum <mode>', 'whether hinted writes count toward W').choices(['sloppy', 'strict'])),
  ).action(async (table: string, o: ConnOpts & { conflicts?: 'vclock' | 'lww' | 'crdt'; type?: 'counter' | 'set' | 'map' | 'register' | 'flag'; n?: number; quorum?: 'sloppy' | 'strict' }) => {
    await withClient(o, async (c) => {
      const def = await c.createTable(table, defined({ conflicts: o.conflicts, type: o.type, n: o.n, quorum: o.quorum }));
      process.stdout.write(`${JSON.stringify(def)}\n`);
    });
  });

  const crdt = program.command('crdt').description('convergent data types: update (apply an operation) or get (value and context)');
  addConnOptions(
    crdt
      .command('update')
      .description('apply OPERATION (JSON: {"increment": 1}, {"add": ["a"]}, {"remove": ["a"], "context": "..."}, ...) to KEY; prints the new value')
      .argument('<table>')
      .argument('<key>')
      .argument('<operation>')
      .option('--w <n>', 'acks required (the coordinating replica included)', intArg('--w', 1, 5)),
  ).action(async (table: string, key: string, operation: string, o: ConnOpts) => {
    await withClient(o, async (c) => {
      const op = parseOperation(operation);
      const res = await c.crdt(table, key).update(op, defined({ w: o.w, consistency: levelOf(o), timeoutMs: o.timeout }));
      process.stdout.write(`${JSON.stringify({ table, key, ...res })}\n`);
    });
  });

  addConnOptions(
    crdt
      .command('get')
      .description(`read KEY's value and context as JSON (exit status ${EXIT_NOT_FOUND} when no replica holds it)`)
      .argument('<table>')
      .argument('<key>')
      .option('--r <n>', 'replies required', intArg('--r', 1, 5)),
  ).action(async (table: string, key: string, o: ConnOpts) => {
    await withClient(o, async (c) => {
      const res = await c.crdt(table, key).value(defined({ r: o.r, consistency: levelOf(o), timeoutMs: o.timeout }));
      process.stdout.write(`${JSON.stringify({ table, key, ...res })}\n`);
      if (!res.found) process.exitCode = EXIT_NOT_FOUND;
    });
  });
}
