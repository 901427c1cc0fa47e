#!/usr/bin/env node
// Fails on any import circle among the sources (type-only imports included: a type circle is
// still a coupling circle), on any import madge could not resolve (a check that cannot see an
// edge would pass vacuously), and on a server module in the client library's imports.
// Run: npm run check:imports. Configuration: .madgerc.
import madge from 'madge';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const IMPORT_CHECKED_DIRS = ['src', 'workers', 'bench'];

/** The import circles and unresolved imports under the checked folders of `root`. */
export async function importProblems(root) {
  const graph = await madge(
    IMPORT_CHECKED_DIRS.map((d) => join(root, d)),
    {
      baseDir: root,
      fileExtensions: ['ts'],
      tsConfig: join(root, 'tsconfig.json'),
      detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: false } },
    },
  );
  const circles = graph.circular().map((c) => c.join(' > '));
  // Packages and node built-ins are left out of the graph without a warning; a skipped import is one not found.
  const skipped = graph.warnings().skipped;
  return { files: Object.keys(graph.obj()).length, circles, skipped };
}

/**
 * What the client library (src/client/) may import from outside its folder, directly or through
 * another module: pure protocol and encoding modules it shares with the server. Never the server's
 * runtime (router, storage, cluster, hints, ...).
 */
export const CLIENT_SHARED = Object.freeze([
  'src/api/ipc-protocol.ts', // the IPC wire protocol
  'src/api/table-name.ts', // the table-name rule
  'src/cluster/handshake.ts', // the peer-port handshake's client side (connectAsClient)
  'src/config/secret.ts', // DEV_SECRET, the loopback default
  'src/net/frames.ts', // length-prefixed msgpack frames
  'src/ring/hash.ts', // tokens (token-aware routing)
  'src/router/consistency.ts', // consistency levels (types only, from ipc-protocol)
  'src/router/types.ts', // ConsistencyReport (types only, from ipc-protocol)
  'src/util/errors.ts',
  'src/util/msgpack-writer.ts', // the hand-written msgpack writer (batch request frames)
  'src/cql/', // the CQL parser: the client finds a statement's partition key for routing
  'src/wide/partition-key.ts',
  'src/wide/uuid.ts',
  'src/wide/values.ts',
]);

/** Modules outside src/client/ that the client reaches and that are not shared protocol modules. */
export async function clientImportProblems(root) {
  const graph = await madge(join(root, 'src/client/index.ts'), {
    baseDir: root,
    fileExtensions: ['ts'],
    tsConfig: join(root, 'tsconfig.json'),
    detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: false } },
  });
  const allowed = (f) => CLIENT_SHARED.some((s) => (s.endsWith('/') ? f.startsWith(s) : f === s));
  const reached = Object.keys(graph.obj()).filter((f) => !f.startsWith('src/client/'));
  return { reached, server: reached.filter((f) => !allowed(f)) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
  const { files, circles, skipped } = await importProblems(root);
  for (const c of circles) console.error(`import circle: ${c}`);
  for (const s of skipped) console.error(`unresolved import: ${s}`);
  const client = await clientImportProblems(root);
  for (const f of client.server) console.error(`the client imports a server module: ${f} (share a pure protocol module instead)`);
  if (circles.length > 0 || skipped.length > 0 || client.server.length > 0) process.exit(1);
  console.log(`no import circles among ${files} files (${IMPORT_CHECKED_DIRS.join(', ')}); the client reaches ${client.reached.length} shared modules and no server module`);
}
