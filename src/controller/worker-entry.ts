/**
 * Entry of the child process that runs ONE EtcdBackup's supervisor (runner model `process`, forked by
 * runner-models.ts). Isolation is the point: a crash, a leak or an out-of-memory kill here takes down
 * this cluster's backups only. The process lives as long as its IPC channel: when the operator goes
 * away (disconnect), it stops the supervisor and exits, so no worker outlives its operator.
 */
import type { ChildMessage, ParentMessage } from './worker-protocol.js';
import { createWorkerRuntime } from './worker-runtime.js';

if (!process.send) {
  console.error('worker-entry: must be started by the operator with an IPC channel');
  process.exit(2);
}

const runtime = createWorkerRuntime({
  send: (message: ChildMessage) =>
    new Promise((resolve) => {
      if (!process.connected) return resolve();
      process.send!(message, undefined, {}, () => resolve());
    }),
  exit: (code) => process.exit(code),
  logLabels: { pid: process.pid },
  ownRss: () => process.memoryUsage.rss(),
});

process.on('message', (message: ParentMessage) => runtime.receive(message));
// The operator died or closed the channel: nobody will read reports or stop us later.
process.on('disconnect', () => void runtime.shutdown(0));
process.on('SIGTERM', () => void runtime.shutdown(0));
process.on('uncaughtException', runtime.fatal);
process.on('unhandledRejection', runtime.fatal);
