import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeDocsSection } from '../../bench/lib/docs-section.js';
import { recordGoals } from '../../bench/lib/goals.js';

test('recordGoals: the summary goes before the first section, gathers every bench, and is rewritten in place', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-goals-'));
  try {
    const doc = join(dir, 'benchmarks.md');
    await writeFile(doc, '# Benchmarks\n\nIntro.\n');
    await writeDocsSection(doc, 'a-bench', 'A section');
    await recordGoals('b-bench', [{ goal: 'ratio <= 1.1', measured: '1.2x', met: false }], dir);
    await recordGoals('a-bench', [{ goal: 'rss <= 100 MiB', measured: '90 MiB', met: true }], dir);
    await recordGoals('a-bench', [{ goal: 'rss <= 100 MiB', measured: '95 MiB', met: true }], dir);
    const text = await readFile(doc, 'utf8');
    assert.ok(text.startsWith('# Benchmarks\n\nIntro.\n'), 'the intro stays first');
    assert.ok(text.indexOf('<!-- goals:start -->') < text.indexOf('<!-- a-bench:start -->'), 'summary before the sections');
    assert.equal(text.split('<!-- goals:start -->').length, 2, 'one summary');
    assert.match(text, /\| rss <= 100 MiB\s+\| 95 MiB\s+\| met\s+\| `bench\/a-bench\.ts`/);
    assert.match(text, /\| ratio <= 1\.1\s+\| 1\.2x\s+\| \*\*NOT met\*\*/);
    assert.doesNotMatch(text, /90 MiB/, 'a re-run replaces its rows');
    assert.ok(text.includes('A section'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
