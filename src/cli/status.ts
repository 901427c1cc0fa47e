import type { Command } from 'commander';

interface NodeRow {
  id: string;
  status: string;
  liveness: string;
  peer: string;
  http: string;
  rack: string;
  load: number;
  tokens: number;
  owned: number;
  hints?: number;
}

/** `ringkv status`: a `nodetool status`-like table of how one node sees the cluster. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the cluster as one node sees it (like nodetool status)')
    .option('--host <host:port>', 'HTTP address of the node to ask', '127.0.0.1:7070')
    .option('--json', 'print the raw JSON')
    .action(async (o: { host: string; json?: boolean }) => {
      let body: Record<string, unknown>;
      try {
        const r = await fetch(`http://${o.host}/api/v1/cluster`, { signal: AbortSignal.timeout(5000) });
        body = (await r.json()) as Record<string, unknown>;
      } catch (e) {
        process.stderr.write(`ringkv status: cannot reach ${o.host}: ${(e as Error).message}\n`);
        process.exit(1);
      }
      if (o.json) {
        console.log(JSON.stringify(body, null, 2));
        return;
      }
      const nodes = body['nodes'] as NodeRow[];
      console.log(`Ring digest ${String(body['ringDigest'])}   as seen by ${String(body['self'])}`);
      console.log('Status=Up/Down  State=Normal/Joining/Leaving');
      const rows = [['--', 'Node', 'Address', 'Load(keys)', 'Tokens', 'Owns', 'Hints', 'Rack']];
      for (const n of nodes) {
        rows.push([
          `${n.liveness === 'up' ? 'U' : 'D'}${n.status[0]!.toUpperCase()}`,
          n.id,
          n.peer,
          String(n.load),
          String(n.tokens),
          `${(n.owned * 100).toFixed(1)}%`,
          String(n.hints ?? 0),
          n.rack,
        ]);
      }
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
    });
}
