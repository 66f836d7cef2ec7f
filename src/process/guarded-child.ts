import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { killWithParent } from './parent-watchdog.js';

/**
 * Server processes this program starts (temporary etcd members; in tests kube-apiserver and MinIO):
 * started with their output in a log file, guarded by the parent-death watchdog, stopped gracefully.
 */

/** Resolves once `child` has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited; then ends its watchdog. */
export async function terminate(child: ChildProcess, exited: Promise<void>, watchdog: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const grace = new AbortController();
    const stopped = await Promise.race([
      exited.then(() => true),
      sleep(graceMs, false, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort(); // do not keep the event loop alive for the unused timer
    if (!stopped) child.kill('SIGKILL');
    await exited;
  }
  watchdog?.kill('SIGKILL');
}

/** A server process started with its output in a log file and a watchdog. */
export interface GuardedChild {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly watchdog: ChildProcess | undefined;
  /** Set when the program could not be started at all (e.g. ENOENT). */
  spawnError(): Error | undefined;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** SIGTERM, SIGKILL after `graceMs`, then the watchdog goes too. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Starts `command` with stdout and stderr appended to `logFile`, guarded by a watchdog.
 * `env` replaces the environment (default: this process's).
 */
export function spawnGuarded(command: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): GuardedChild {
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', logFd, logFd], ...(env ? { env } : {}) });
  } finally {
    closeSync(logFd);
  }
  const exited = exitOf(child);
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const watchdog = killWithParent(child);
  return {
    child,
    exited,
    watchdog,
    spawnError: () => spawnError,
    hasExited: () => child.exitCode !== null || child.signalCode !== null,
    stop: (graceMs) => terminate(child, exited, watchdog, graceMs),
  };
}

/** The last lines of a log file on one line, for an error message. */
export function logTail(file: string, count: number, maxChars: number): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines.slice(-count).join(' | ').slice(0, maxChars);
  } catch {
    return 'no log';
  }
}
