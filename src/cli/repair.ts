import { InvalidArgumentError, type Command } from 'commander';
import { NodeHttpError, nodeJson } from './node-http.js';

/** POST /api/v1/repair and return the report, or throw a NodeHttpError saying clearly what went wrong. */
function requestRepair(host: string, table: string | undefined, timeoutMs: number): Promise<Record<string, unknown>> {
  return nodeJson({
    host,
    path: '/api/v1/repair',
    method: 'POST',
    body: table === undefined ? {} : { table },
    timeoutMs,
    timeoutNote: ' (the session may still be running there)',
    expect: { what: 'a repair report', ok: (b) => typeof b['rangesCompared'] === 'number' },
  });
}

/** `ringkv repair`: run an anti-entropy session on one node now (like `nodetool repair`). Exit 1 on any failure. */
export function registerRepair(program: Command): void {
  program
    .command('repair')
    .description('compare Merkle trees with the other replicas and stream only the keys that differ (exit status 1 on any error)')
    .option('--table <table>', 'stream only this table\'s keys (trees still cover every table)')
    .option('--host <host:port>', 'HTTP address of the node to repair from', '127.0.0.1:7070')
    .option('--json', 'print the raw JSON report')
    .option(
      '--timeout <ms>',
      'give up after this long',
      (v: string) => {
        if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('--timeout must be a positive integer (ms)');
        return Number(v);
      },
      600_000,
    )
    .action(async (o: { table?: string; host: string; json?: boolean; timeout: number }) => {
      let body: Record<string, unknown>;
      try {
        body = await requestRepair(o.host, o.table, o.timeout);
      } catch (e) {
        if (!(e instanceof NodeHttpError)) throw e;
        process.stderr.write(`ringkv repair: ${e.message}\n`);
        process.exitCode = 1;
        return;
      }
      const errors = Array.isArray(body['errors']) ? body['errors'].map(String) : [];
      if (errors.length > 0) process.exitCode = 1;
      if (o.json) {
        console.log(JSON.stringify(body, null, 2));
        return;
      }
      const n = (k: string): string => String(body[k] ?? 0);
      const peers = Array.isArray(body['peers']) ? body['peers'].map(String) : [];
      console.log(`repair ${body['table'] ? `of table ${String(body['table'])} ` : ''}with ${peers.join(', ') || 'no peers'} in ${n('durationMs')} ms`);
      console.log(`ranges   compared ${n('rangesCompared')}  differed ${n('rangesDiffered')}  skipped ${n('rangesSkipped')}`);
      console.log(`hashes   compared ${n('hashesCompared')}`);
      console.log(`keys     compared ${n('keysCompared')}  sent ${n('keysSent')}  received ${n('keysReceived')}  skipped ${n('keysSkipped')}`);
      console.log(`bytes    sent ${n('bytesSent')}  received ${n('bytesReceived')}`);
      if (errors.length > 0) {
        console.log('errors:');
        for (const e of errors) console.log(`  ${e}`);
      }
    });
}
