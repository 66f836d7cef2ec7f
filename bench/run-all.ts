/**
 * `npm run bench`: runs every benchmark in turn, each as its own process (so one's memory does not
 * colour another's figures); each rewrites only its own section of docs/benchmarks.md, its charts in
 * docs/benchmarks/*.svg and its goal rows (docs/benchmarks/<bench>.goals.json), from which the goals
 * summary at the top of docs/benchmarks.md is rebuilt. A listed bench whose file does not exist (yet)
 * is skipped with a message. Run a bench alone for its own options (see each file's header).
 * About 24 minutes on 2 cores (18 min measured on 2026-11-25, before the delta bench gained 4 A/B rows;
 * s3-staging-copy took 3 min 52 s on 2026-12-04).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGoalSummary } from './lib/goals.js';

const BENCHES = [
  'full-snapshot.ts',
  's3-upload.ts',
  'delta-memory.ts',
  'etcd-server-memory.ts',
  'many-clusters.ts',
  'restore.ts',
  // Writes its section into docs/s3.md; about 4 minutes on MinIO, skipped when MinIO is not built.
  's3-staging-copy.ts',
];
const root = fileURLToPath(new URL('..', import.meta.url));
let failed = 0;
for (const bench of BENCHES) {
  if (!existsSync(join(root, 'bench', bench))) {
    console.log(`\n=== bench/${bench}: not there, skipped`);
    continue;
  }
  console.log(`\n=== bench/${bench}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', `bench/${bench}`], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    failed++;
    console.error(`bench/${bench} failed (exit ${result.status ?? result.signal})`);
  }
}
await writeGoalSummary();
process.exitCode = failed > 0 ? 1 : 0;
