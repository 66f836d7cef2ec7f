/**
 * Entry of the child process that runs ONE EtcdBackup's supervisor, forked by supervisor-host.ts.
 * Isolation is the point: a crash, a leak or an out-of-memory kill here takes down this cluster's
 * backups only. The process lives as long as its IPC channel: when the operator goes away
 * (disconnect), it stops the supervisor and exits, so no worker outlives its operator.
 */
import { favourSmallHeap } from '../engine/heap-mode.js';
import { Supervisor } from '../engine/supervisor.js';
import type { SupervisorReport } from '../api/supervisor-report.js';
import { OperatorError, errorMessage } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import type { ChildMessage, ParentMessage } from './worker-protocol.js';

if (!process.send) {
  console.error('worker-entry: must be started by the operator with an IPC channel');
  process.exit(2);
}

favourSmallHeap();

let supervisor: Supervisor | undefined;
let logger: Logger = createLogger({ format: 'json' });
let exiting = false;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

async function shutdown(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  const stopping = supervisor;
  supervisor = undefined;
  try {
    await stopping?.stop();
  } catch (err) {
    logger.error('Failed to stop the backup supervisor cleanly', { error: errorMessage(err) });
    code = code || 1;
  }
  await send({ type: 'stopped' });
  process.exit(code);
}

async function start(message: Extract<ParentMessage, { type: 'start' }>): Promise<void> {
  logger = createLogger({ format: message.log.format, level: message.log.level }).child({
    namespace: message.labels.namespace,
    name: message.labels.name,
    pid: process.pid,
  });
  try {
    supervisor = new Supervisor(message.config, logger);
    // The worker's own RSS rides along: the operator exports it per EtcdBackup.
    const withRss = (report: SupervisorReport): SupervisorReport => ({
      ...report,
      memory: { ...report.memory, rssBytes: process.memoryUsage.rss() },
    });
    supervisor.onReport((report) => void send({ type: 'report', report: withRss(report) }));
    supervisor.onEvent((event) => void send({ type: 'event', event }));
    await supervisor.start();
    await send({ type: 'started' });
    await send({ type: 'report', report: withRss(supervisor.report()) });
  } catch (err) {
    logger.error('Failed to start the backup supervisor', { error: errorMessage(err) });
    await send({
      type: 'failed',
      message: errorMessage(err),
      reason: err instanceof OperatorError ? err.reason : 'SupervisorStartFailed',
    });
    await shutdown(1);
  }
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'start' && !supervisor && !exiting) void start(message);
  else if (message.type === 'stop') void shutdown(0);
  else if (message.type === 'snapshot' && supervisor && !exiting) void supervisor.requestFullSnapshot(message.requestedAt);
});
// The operator died or closed the channel: nobody will read reports or stop us later.
process.on('disconnect', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
// Anything unexpected: report it as a failure and exit, so that the host restarts us with backoff
// instead of leaving a half-working supervisor behind.
const fatal = (err: unknown) => {
  logger.error('Backup worker failed', { error: errorMessage(err) });
  void send({ type: 'failed', message: errorMessage(err), reason: 'SupervisorCrashed' }).then(() => process.exit(1));
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
