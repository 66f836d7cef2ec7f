import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Server processes this program starts (temporary etcd members, and in tests kube-apiserver) must not
 * outlive it, even when it dies by SIGKILL: a watchdog shell kills the child once this process is gone.
 */

/** Kills `child` when this process dies, even by SIGKILL (a parent-death check once a second). */
export function startWatchdog(child: ChildProcess): ChildProcess | undefined {
  if (child.pid === undefined) return undefined;
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; kill -9 ${child.pid} 2>/dev/null`;
  const watchdog = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
  watchdog.unref();
  watchdog.on('error', () => undefined);
  return watchdog;
}

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
