/**
 * The goals summary at the top of docs/benchmarks.md. Each bench records its own goal rows
 * (`recordGoals('full-snapshot', [...])`) into docs/benchmarks/<bench>.goals.json, and the summary
 * section is rebuilt from every such file, so it is right whether one bench or `npm run bench` ran.
 * A row says what was measured, not whether it looks good: `met` is computed by the bench from the
 * figure and the threshold of the same run.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDocsSection } from './docs-section.js';
import { markdownTable } from './table.js';

export interface GoalRow {
  /** The goal as the issue states it, e.g. "full snapshot time ratio <= 1.1 vs etcdctl (200 MB)". */
  goal: string;
  /** The figure measured, with its unit, e.g. "1.16x". */
  measured: string;
  met: boolean;
}

interface GoalsFile {
  bench: string;
  date: string;
  rows: GoalRow[];
}

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const SUFFIX = '.goals.json';

/** Records `bench`'s goal rows and rewrites the summary section of docs/benchmarks.md. */
export async function recordGoals(bench: string, rows: readonly GoalRow[], docsDir = DOCS): Promise<void> {
  const dir = join(docsDir, 'benchmarks');
  await mkdir(dir, { recursive: true });
  const file: GoalsFile = { bench, date: new Date().toISOString().slice(0, 10), rows: [...rows] };
  await writeFile(join(dir, `${bench}${SUFFIX}`), JSON.stringify(file, null, 2) + '\n');
  await writeGoalSummary(docsDir);
}

export async function writeGoalSummary(docsDir = DOCS): Promise<void> {
  const dir = join(docsDir, 'benchmarks');
  const names = existsSync(dir) ? (await readdir(dir)).filter((f) => f.endsWith(SUFFIX)).sort() : [];
  const files = await Promise.all(names.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as GoalsFile));
  const rows = files.flatMap((f) => f.rows.map((r) => [r.goal, r.measured, r.met ? 'met' : '**NOT met**', `\`bench/${f.bench}.ts\`, ${f.date}`]));
  const body = `## Goals

Each figure below is a ratio or a comparison measured within one run of the bench named (which also
compares against its baseline in the same run); the sections further down give the conditions. Rows come
from \`docs/benchmarks/*.goals.json\`, written by each bench. \`npm run bench\` re-measures everything.

${rows.length ? markdownTable([{ title: 'goal' }, { title: 'measured' }, { title: 'met?' }, { title: 'bench, date' }], rows) : 'No bench has recorded goals yet.'}`;
  await writeDocsSection(join(docsDir, 'benchmarks.md'), 'goals', body, { top: true });
}
