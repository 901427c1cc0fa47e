import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { clientImportProblems, importProblems } from '../../scripts/check-imports.mjs';
import { fileSizeProblems, MAX_SOURCE_LINES } from '../../scripts/check-file-size.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

// The module map's rules (issue 16), checked on every test run: no import circle (type imports
// included), no unresolvable import, no source file past the line limit (none is exempt).
describe('source layout', () => {
  it('has no import circle and no unresolved import under src, workers and bench', async () => {
    const r = (await importProblems(root)) as { files: number; circles: string[]; skipped: string[] };
    expect(r.files).toBeGreaterThan(150); // the graph really saw the sources
    expect(r.circles).toEqual([]);
    expect(r.skipped).toEqual([]);
  });

  it('the client library imports only shared protocol modules, no server module', async () => {
    const r = (await clientImportProblems(root)) as { reached: string[]; server: string[] };
    expect(r.reached).toContain('src/api/ipc-protocol.ts'); // the graph really followed the client's imports
    expect(r.server).toEqual([]);
  });

  it(`has no source file over ${MAX_SOURCE_LINES as number} lines`, () => {
    expect(fileSizeProblems(root) as string[]).toEqual([]);
  });
});
