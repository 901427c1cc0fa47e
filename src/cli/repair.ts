import type { Command } from 'commander';

/** `ringkv repair`: run an anti-entropy session on one node now (like `nodetool repair`). */
export function registerRepair(program: Command): void {
  program
    .command('repair')
    .description('compare Merkle trees with the other replicas and stream only the keys that differ')
    .option('--table <table>', 'stream only this table\'s keys (trees still cover every table)')
    .option('--host <host:port>', 'HTTP address of the node to repair from', '127.0.0.1:7070')
    .option('--json', 'print the raw JSON report')
    .option('--timeout <ms>', 'give up after this long', '600000')
    .action(async (o: { table?: string; host: string; json?: boolean; timeout: string }) => {
      let status = 0;
      let body: Record<string, unknown>;
      try {
        const r = await fetch(`http://${o.host}/api/v1/repair`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(o.table === undefined ? {} : { table: o.table }),
          signal: AbortSignal.timeout(Number(o.timeout) || 600_000),
        });
        status = r.status;
        body = (await r.json()) as Record<string, unknown>;
      } catch (e) {
        process.stderr.write(`ringkv repair: cannot reach ${o.host}: ${(e as Error).message}\n`);
        process.exit(1);
      }
      if (status !== 200) {
        const err = body['error'] as { message?: string } | undefined;
        process.stderr.write(`ringkv repair: ${err?.message ?? JSON.stringify(body)}\n`);
        process.exit(1);
      }
      if (o.json) {
        console.log(JSON.stringify(body, null, 2));
        return;
      }
      const n = (k: string): string => String(body[k] ?? 0);
      console.log(`repair ${body['table'] ? `of table ${String(body['table'])} ` : ''}with ${(body['peers'] as string[]).join(', ') || 'no peers'} in ${n('durationMs')} ms`);
      console.log(`ranges   compared ${n('rangesCompared')}  differed ${n('rangesDiffered')}  skipped ${n('rangesSkipped')}`);
      console.log(`hashes   compared ${n('hashesCompared')}`);
      console.log(`keys     compared ${n('keysCompared')}  sent ${n('keysSent')}  received ${n('keysReceived')}  skipped ${n('keysSkipped')}`);
      console.log(`bytes    sent ${n('bytesSent')}  received ${n('bytesReceived')}`);
      const errors = body['errors'] as string[] | undefined;
      if (errors && errors.length > 0) {
        console.log('errors:');
        for (const e of errors) console.log(`  ${e}`);
        process.exitCode = 1;
      }
    });
}
