/**
 * Runs a command as a child process and measures its wall time and peak RSS.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the kernel's ru_maxrss of the waited-for
 * process, exact) when it is installed, cross-checked with the process's own high-water mark
 * (`VmHWM` in /proc/<pid>/status) sampled until it exits. Without GNU time only the sampled VmHWM is
 * used; VmHWM never decreases, so sampling misses at most the growth of the last interval.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { procKbField } from './proc-status.js';

export const GNU_TIME = '/usr/bin/time';

export interface MeasuredRun {
  command: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** From spawn to exit, measured here. */
  seconds: number;
  /** Best available peak RSS: GNU time's maxrss if present, else the sampled VmHWM. */
  peakRssBytes: number;
  /** VmHWM sampled from /proc (0 if the process ended before the first sample). */
  sampledHwmBytes: number;
  /** ru_maxrss reported by GNU time, if it was used. */
  maxRssBytes?: number;
  /** User + system CPU seconds of the process (GNU time), if it was used. */
  cpuSeconds?: number;
  stdout: string;
  stderr: string;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Sampling interval for VmHWM; default 10 ms. */
  sampleMs?: number;
  /** Use GNU time when installed (default true). */
  useGnuTime?: boolean;
}

export function hasGnuTime(): boolean {
  return existsSync(GNU_TIME);
}

/** VmHWM of a live process in bytes, or undefined once it is gone. */
export async function readVmHwm(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return procKbField(status, 'VmHWM');
  } catch {
    return undefined;
  }
}

/** The first child of `pid` (the program GNU time runs), if it has started. */
async function firstChild(pid: number): Promise<number | undefined> {
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
    const first = Number(children[0]);
    return Number.isSafeInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

export async function measureProcess(command: string[], options: MeasureOptions = {}): Promise<MeasuredRun> {
  const [file, ...args] = command;
  if (!file) throw new Error('measureProcess: empty command');
  const useTime = (options.useGnuTime ?? true) && hasGnuTime();
  const scratch = useTime ? await mkdtemp(join(tmpdir(), 'bench-time-')) : undefined;
  const timeFile = scratch ? join(scratch, 'time.out') : undefined;
  const argv = timeFile ? [GNU_TIME, '-f', '%M %U %S', '-o', timeFile, file, ...args] : [file, ...args];
  try {
    const started = performance.now();
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>(
      (resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code, signal) => resolve({ code, signal, seconds: (performance.now() - started) / 1000 }));
      },
    );
    let done = false;
    let sampled = 0;
    const sampler = (async () => {
      const interval = options.sampleMs ?? 10;
      let target: number | undefined = timeFile ? undefined : child.pid;
      while (!done) {
        if (target === undefined && child.pid !== undefined) target = await firstChild(child.pid);
        if (target !== undefined) {
          const hwm = await readVmHwm(target);
          if (hwm !== undefined && hwm > sampled) sampled = hwm;
        }
        await new Promise((r) => setTimeout(r, interval));
      }
    })();
    const result = await exited;
    done = true;
    await sampler;
    // 'exit' may come before the pipes are drained.
    await Promise.all([
      new Promise((r) => (child.stdout.readableEnded ? r(undefined) : child.stdout.once('close', r))),
      new Promise((r) => (child.stderr.readableEnded ? r(undefined) : child.stderr.once('close', r))),
    ]);
    let maxRssBytes: number | undefined;
    let cpuSeconds: number | undefined;
    if (timeFile) {
      // GNU time writes "Command exited with non-zero status N" before the format line on failure.
      const lines = (await readFile(timeFile, 'utf8').catch(() => '')).trim().split('\n');
      const [kb, user, system] = (lines[lines.length - 1] ?? '').trim().split(/\s+/).map(Number);
      if (kb !== undefined && Number.isFinite(kb) && kb > 0) maxRssBytes = kb * 1024;
      if (user !== undefined && system !== undefined && Number.isFinite(user + system)) cpuSeconds = user + system;
    }
    return {
      command,
      exitCode: result.code,
      signal: result.signal,
      seconds: result.seconds,
      peakRssBytes: maxRssBytes ?? sampled,
      sampledHwmBytes: sampled,
      maxRssBytes,
      cpuSeconds,
      stdout,
      stderr,
    };
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
