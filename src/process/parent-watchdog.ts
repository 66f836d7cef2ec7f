import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Kills `child` when this process dies, even by SIGKILL: a detached shell checks once a second that
 * both are alive and SIGKILLs the child when this process is gone. Every server a test or the CLI
 * starts (temporary etcd members, kube-apiserver, MinIO, the e2e operators) uses it, mostly through
 * spawnGuarded (guarded-child.ts), so a crash never leaves one behind.
 * Returns the watchdog (kill it once the child has been stopped), or undefined if the child never started.
 */
export function killWithParent(child: ChildProcess): ChildProcess | undefined {
  if (child.pid === undefined) return undefined;
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; kill -9 ${child.pid} 2>/dev/null`;
  const watchdog = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
  watchdog.unref();
  watchdog.on('error', () => undefined);
  return watchdog;
}
