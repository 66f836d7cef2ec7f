/**
 * The worker side of the worker protocol, whatever the runner model: it runs ONE EtcdBackup's
 * Supervisor and talks to the operator's SupervisorHost through a `WorkerPort`. The forked process
 * (worker-entry.ts), the worker thread (thread-entry.ts) and the in-process model (runner-models.ts)
 * only differ in how messages travel and what "exit" means, so they all run this.
 */
import { favourSmallHeap } from '../engine/heap-mode.js';
import { Supervisor } from '../engine/supervisor.js';
import type { SupervisorReport } from '../api/supervisor-report.js';
import { OperatorError, errorMessage } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import type { ChildMessage, ParentMessage } from './worker-protocol.js';

export interface WorkerPort {
  /** Resolves once the message is on its way (or cannot be sent any more). */
  send(message: ChildMessage): Promise<void>;
  /** Ends this worker: the process, the thread, or (in-process) the host's handle of it. */
  exit(code: number): void;
  /** Put on every log line besides namespace and name (pid, threadId). */
  logLabels: Record<string, number>;
  /** Resident memory that is this worker's alone; undefined when it shares a process with others. */
  ownRss?: () => number;
}

export interface WorkerRuntime {
  /** Handles one message from the operator. */
  receive(message: ParentMessage): void;
  /** Stops the supervisor and exits with `code` (the operator went away, or asked us to stop). */
  shutdown(code: number): Promise<void>;
  /**
   * Something escaped the supervisor (an uncaught exception or rejection in its work): report it
   * as a failure and exit, so the host restarts this worker with backoff instead of leaving a
   * half-working supervisor behind.
   */
  fatal(err: unknown): void;
}

/** How long a worker that failed may take to stop its supervisor before it exits anyway. */
const FATAL_STOP_MS = 10_000;

export function createWorkerRuntime(port: WorkerPort): WorkerRuntime {
  // V8 flags are per process: in the thread and in-process models this also applies to the operator,
  // which is then a long-running backup process too.
  favourSmallHeap();
  let supervisor: Supervisor | undefined;
  let logger: Logger = createLogger({ format: 'json' });
  let exiting = false;

  const shutdown = async (code: number, deadlineMs?: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    const stopping = supervisor;
    supervisor = undefined;
    try {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        if (deadlineMs !== undefined) timer = setTimeout(resolve, deadlineMs);
      });
      await Promise.race([stopping?.stop(), ...(deadlineMs === undefined ? [] : [deadline])]);
      clearTimeout(timer);
    } catch (err) {
      logger.error('Failed to stop the backup supervisor cleanly', { error: errorMessage(err) });
      code = code || 1;
    }
    await port.send({ type: 'stopped' });
    port.exit(code);
  };

  const start = async (message: Extract<ParentMessage, { type: 'start' }>): Promise<void> => {
    logger = createLogger({ format: message.log.format, level: message.log.level }).child({
      namespace: message.labels.namespace,
      name: message.labels.name,
      ...port.logLabels,
    });
    try {
      const starting = new Supervisor(message.config, logger);
      supervisor = starting;
      // A worker process's own RSS rides along: the operator exports it per EtcdBackup.
      const withRss = (report: SupervisorReport): SupervisorReport =>
        port.ownRss ? { ...report, memory: { ...report.memory, rssBytes: port.ownRss() } } : report;
      starting.onReport((report) => void port.send({ type: 'report', report: withRss(report) }));
      starting.onEvent((event) => void port.send({ type: 'event', event }));
      await starting.start();
      // Stopped while starting: shutdown() has stopped it and says so; nothing started to report.
      if (exiting) return;
      await port.send({ type: 'started' });
      await port.send({ type: 'report', report: withRss(starting.report()) });
    } catch (err) {
      logger.error('Failed to start the backup supervisor', { error: errorMessage(err) });
      await port.send({
        type: 'failed',
        message: errorMessage(err),
        reason: err instanceof OperatorError ? err.reason : 'SupervisorStartFailed',
      });
      await shutdown(1);
    }
  };

  const fatal = (err: unknown): void => {
    if (exiting) return;
    logger.error('Backup worker failed', { error: errorMessage(err) });
    // A failed supervisor may not stop cleanly: give it a while to cancel its uploads, then go.
    void port.send({ type: 'failed', message: errorMessage(err), reason: 'SupervisorCrashed' }).then(() => shutdown(1, FATAL_STOP_MS));
  };

  return {
    receive(message) {
      if (message.type === 'start' && !supervisor && !exiting) void start(message);
      else if (message.type === 'stop') void shutdown(0);
      else if (message.type === 'snapshot' && supervisor && !exiting) void supervisor.requestFullSnapshot(message.requestedAt);
      else if (message.type === 'fault' && supervisor && !exiting) injectFault(message.kind, message.message);
    },
    shutdown,
    fatal,
  };
}

/** Fault injection (isolation tests): a bug in the worker's own async context. */
function injectFault(kind: 'exception' | 'heap', message: string): void {
  if (kind === 'exception') {
    setImmediate(() => {
      throw new Error(`injected fault: ${message}`);
    });
    return;
  }
  // A leak past any budget: reachable arrays until V8 gives up on this heap.
  const leak: number[][] = [];
  const grow = () => {
    for (let i = 0; i < 64; i++) leak.push(new Array<number>(16_384).fill(i));
    setImmediate(grow);
  };
  grow();
}
