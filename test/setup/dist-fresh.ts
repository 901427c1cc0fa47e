import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Vitest global setup: refuse to run against a stale build. Integration tests start real nodes from
 * `dist/` (bin/ringkv.js) and some unit tests import it, so a `vitest run` after editing `src/`
 * without `npm run build` would test the old code and pass or fail for the wrong reason.
 * `npm test` builds first; a direct `npx vitest run` is checked here: every TypeScript source must
 * have its compiled file in `dist/`, written no earlier than the source was last modified.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_DIRS = ['src', 'workers', 'bench'];
/** How many stale files the message lists (the rest are counted). */
const LISTED_MAX = 5;

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(path);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield path;
  }
}

/** Sources whose compiled file in dist/ is missing or older than they are. */
export function staleSources(): string[] {
  const stale: string[] = [];
  for (const dir of SOURCE_DIRS) {
    const abs = join(root, dir);
    if (!existsSync(abs)) continue;
    for (const src of tsFiles(abs)) {
      const rel = relative(root, src);
      const out = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
      if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) stale.push(rel);
    }
  }
  return stale;
}

export default function setup(): void {
  const stale = staleSources();
  if (stale.length === 0) return;
  const listed = stale.slice(0, LISTED_MAX).join(', ') + (stale.length > LISTED_MAX ? ` and ${stale.length - LISTED_MAX} more` : '');
  throw new Error(`dist/ is older than the sources (${listed}): the tests run the compiled code in dist/. Run \`npm run build\` first (or \`npm test\`, which builds).`);
}
