import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gcFlagsMissing, NODE_PROCESS_FLAGS } from '../../src/cli/process-flags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('the node process flags', () => {
  it('names what a process started without them lacks', () => {
    expect(gcFlagsMissing([])).toEqual([...NODE_PROCESS_FLAGS]);
    expect(gcFlagsMissing(['--inspect', ...NODE_PROCESS_FLAGS])).toEqual([]);
  });

  it('bin/ringkv.js (its shebang) and npm start pass every one of them', () => {
    const shebang = readFileSync(path.join(ROOT, 'bin/ringkv.js'), 'utf8').split('\n')[0]!;
    const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start']!;
    for (const f of NODE_PROCESS_FLAGS) {
      expect(shebang.split(' ')).toContain(f);
      expect(start.split(' ').slice(0, start.split(' ').indexOf('./bin/ringkv.js'))).toContain(f);
    }
  });
});
