#!/usr/bin/env node
// Fails when a source file under src/ or workers/ is longer than MAX_SOURCE_LINES: a file past that
// holds several machines and wants splitting along its seams (issue 16). Run: npm run check:size.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAX_SOURCE_LINES = 600;
export const CHECKED_DIRS = ['src', 'workers'];

function* sourceFiles(root, dir) {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(root, path);
    else if (e.name.endsWith('.ts')) yield path;
  }
}

function lineCount(text) {
  if (text.length === 0) return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

/** Every problem found, as sentences (empty: the check passes). No file is exempt. */
export function fileSizeProblems(root) {
  const problems = [];
  for (const dir of CHECKED_DIRS) {
    for (const path of sourceFiles(root, dir)) {
      const name = relative(root, join(root, path)).split(sep).join('/');
      const lines = lineCount(readFileSync(join(root, path), 'utf8'));
      if (lines > MAX_SOURCE_LINES) problems.push(`${name} has ${lines} lines (limit ${MAX_SOURCE_LINES}): split it along its seams`);
    }
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
  const problems = fileSizeProblems(root);
  for (const p of problems) console.error(p);
  if (problems.length > 0) process.exit(1);
  console.log(`source files within ${MAX_SOURCE_LINES} lines`);
}
