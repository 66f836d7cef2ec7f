/**
 * `npm run bench`: runs every benchmark in turn, each as its own process (so one's memory does not
 * colour another's figures); each rewrites only its own section of docs/benchmarks.md.
 * About 15 minutes on 2 cores. Run a bench alone for its own options (see each file's header).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES = ['full-snapshot.ts', 's3-upload.ts', 'delta-memory.ts'];
const root = fileURLToPath(new URL('..', import.meta.url));
let failed = 0;
for (const bench of BENCHES) {
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
process.exitCode = failed > 0 ? 1 : 0;
