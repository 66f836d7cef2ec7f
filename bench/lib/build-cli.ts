/**
 * Compiles src/ with tsconfig.build.json into `<dir>/dist`, next to a package.json (ESM) and a
 * node_modules link, so `node <dir>/dist/cli/main.js` runs as the shipped CLI does (no tsx loader in
 * the measured processes) without touching the shared dist/. The same steps as bench/full-snapshot.ts's
 * own build.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BuiltCli {
  /** `<dir>/dist/cli/main.js`. */
  mainJs: string;
  /** `git describe --always --dirty` of the work tree that was compiled. */
  commit: string;
  /** tsc exited non-zero (someone's work in progress elsewhere) but emitted the CLI anyway. */
  warnings?: string;
}

export async function buildCli(repo: string, dir: string): Promise<BuiltCli> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  let warnings: string | undefined;
  try {
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], {
      cwd: repo,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? String(err);
    warnings = out.trim().split('\n').slice(0, 5).join(' | ');
  }
  const mainJs = join(dir, 'dist', 'cli', 'main.js');
  if (!existsSync(mainJs)) throw new Error(`tsc did not emit ${mainJs}: ${warnings ?? ''}`);
  const commit = (await run('git', ['describe', '--always', '--dirty'], { cwd: repo }).catch(() => ({ stdout: '?' }))).stdout.trim();
  return { mainJs, commit, warnings };
}
