/**
 * Compiles the CLI into `<dir>/dist`, next to a package.json (ESM) and a node_modules link, so
 * `node <dir>/dist/cli/main.js` runs as the shipped CLI does (no tsx loader in the measured processes)
 * without touching the shared dist/.
 *
 * `from: 'HEAD'` (default) compiles the committed src/ (exported with `git archive`), so the figures
 * belong to a commit and not to whatever other engineers have half-edited in the work tree;
 * `from: 'worktree'` compiles the work tree as it is (bench/full-snapshot.ts's own build does that).
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
  /** The commit compiled (`-dirty` when the work tree was compiled and had changes). */
  commit: string;
  /** tsc exited non-zero but emitted the CLI anyway. */
  warnings?: string;
}

export async function buildCli(repo: string, dir: string, options: { from?: 'HEAD' | 'worktree' } = {}): Promise<BuiltCli> {
  const from = options.from ?? 'HEAD';
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  let sources = repo;
  let commit: string;
  if (from === 'HEAD') {
    sources = join(dir, 'src-head');
    await mkdir(sources);
    const tar = join(dir, 'head.tar');
    await run('git', ['archive', '--format=tar', '-o', tar, 'HEAD', 'src', 'tsconfig.json', 'tsconfig.build.json'], { cwd: repo });
    await run('tar', ['-xf', tar, '-C', sources]);
    await symlink(join(repo, 'node_modules'), join(sources, 'node_modules'), 'dir');
    commit = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo })).stdout.trim();
  } else {
    commit = (await run('git', ['describe', '--always', '--dirty'], { cwd: repo }).catch(() => ({ stdout: '?' }))).stdout.trim();
  }
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  let warnings: string | undefined;
  try {
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], {
      cwd: sources,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? String(err);
    warnings = out.trim().split('\n').slice(0, 5).join(' | ');
  }
  const mainJs = join(dir, 'dist', 'cli', 'main.js');
  if (!existsSync(mainJs)) throw new Error(`tsc did not emit ${mainJs}: ${warnings ?? ''}`);
  return { mainJs, commit, warnings };
}
