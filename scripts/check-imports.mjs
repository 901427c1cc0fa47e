#!/usr/bin/env node
// Fails on any import circle among the sources (type-only imports included: a type circle is
// still a coupling circle), and on any import madge could not resolve (a check that cannot see an
// edge would pass vacuously). Run: npm run check:imports. Configuration: .madgerc.
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

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
  const { files, circles, skipped } = await importProblems(root);
  for (const c of circles) console.error(`import circle: ${c}`);
  for (const s of skipped) console.error(`unresolved import: ${s}`);
  if (circles.length > 0 || skipped.length > 0) process.exit(1);
  console.log(`no import circles among ${files} files (${IMPORT_CHECKED_DIRS.join(', ')})`);
}
