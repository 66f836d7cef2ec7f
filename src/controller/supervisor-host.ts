import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SupervisorReport } from '../api/supervisor-report.js';
import type { SupervisorConfig, SupervisorEvent } from '../engine/supervisor-types.js';
import type { Logger } from '../observability/logger.js';
import type { WorkerState } from './conditions.js';
import type { ChildMessage, ParentMessage } from './worker-protocol.js';

/**
 * Runs each EtcdBackup's supervisor in its own child process (worker-entry.ts), so that one
 * cluster's crash, leak or memory blow-up cannot take down the operator or the other clusters.
 * - Config and Secrets go over the IPC channel only (never argv or the environment).
 * - The child's V8 heap is capped at the memory budget plus a base.
 * - A child that exits unexpectedly is restarted with exponential backoff; the crash is reported
 *   through the listener (condition + Event) and visible in `state()`.
 * - At most one child per key exists at any time, also across restarts with a new config: a new
 *   child starts only after the previous one has exited, so two never write the same store.
 */
export interface SupervisorHostListener {
  /** The state of `key` changed (started, report, crash): the controller re-reconciles it. */
  onChange(key: string): void;
  onReport(key: string, report: SupervisorReport): void;
  onEvent(key: string, event: SupervisorEvent): void;
  onCrash(key: string, message: string, restarts: number): void;
  onStarted(key: string): void;
}

export interface SupervisorHostOptions {
  logger: Logger;
  listener: SupervisorHostListener;
  /** Log settings passed to the workers. */
  log?: { level: string; format: 'json' | 'text' };
  /** Heap the worker needs besides the budget (code, etcd and S3 clients, bookkeeping). Default 128 MiB. */
  baseHeapMb?: number;
  /** Restart backoff: initial delay doubling up to max. Default 1 s .. 5 min. */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** How long a worker may take to stop (cancel uploads) before it is killed. Default 30 s. */
  stopTimeoutMs?: number;
  /** A worker that ran this long before crashing starts the backoff over. Default 10 min. */
  stableAfterMs?: number;
  /** Override the worker entry (tests). */
  worker?: { modulePath: string; execArgv: string[] };
}

type Phase = 'Starting' | 'Running' | 'CrashLoop';

interface Entry {
  key: string;
  config: SupervisorConfig;
  hash: string;
  phase: Phase;
  child?: ChildProcess;
  report?: SupervisorReport;
  restarts: number;
  lastError?: string;
  failure?: string;
  startedAt: number;
  restartTimer?: NodeJS.Timeout;
  nextRestartTime?: string;
}

/**
 * A 1 MiB young generation makes V8 free the short-lived Buffers of streaming (snapshot messages,
 * watch responses) soon after use; the default lets ~35 MiB of them pile up (bench/full-snapshot.ts).
 */
const WORKER_NODE_FLAGS = ['--max-semi-space-size=1'];

/**
 * The compiled worker sits next to this file; under tsx (tests, `npm run` from source) this file is
 * a .ts and the worker must be loaded through tsx too.
 */
export function defaultWorker(): { modulePath: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return {
      modulePath: fileURLToPath(new URL('./worker-entry.ts', import.meta.url)),
      execArgv: ['--import', 'tsx', ...WORKER_NODE_FLAGS],
    };
  }
  return { modulePath: fileURLToPath(new URL('./worker-entry.js', import.meta.url)), execArgv: [...WORKER_NODE_FLAGS] };
}

const MiB = 2 ** 20;

/** Heap a worker needs besides its budget (code, etcd and S3 clients, bookkeeping); pod workers use it too. */
export const DEFAULT_BASE_HEAP_MB = 128;

export class SupervisorHost {
  private readonly entries = new Map<string, Entry>();
  /** Exits of children being stopped; a new child for the key waits for it. */
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly worker: { modulePath: string; execArgv: string[] };
  private closed = false;

  constructor(private readonly options: SupervisorHostOptions) {
    this.worker = options.worker ?? defaultWorker();
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  hashOf(key: string): string | undefined {
    return this.entries.get(key)?.hash;
  }

  state(key: string): WorkerState {
    const entry = this.entries.get(key);
    if (!entry) return { phase: 'Stopped' };
    if (entry.phase === 'CrashLoop') {
      return {
        phase: 'CrashLoop',
        lastError: entry.lastError ?? 'exited',
        restarts: entry.restarts,
        nextRestartTime: entry.nextRestartTime,
        report: entry.report,
      };
    }
    return { phase: entry.phase, report: entry.report };
  }

  /**
   * Runs `key` with `config`; idempotent for the same `hash`. A different hash stops the running
   * worker first (its in-flight work is cancelled) and starts a new one with the new config.
   */
  async ensure(key: string, config: SupervisorConfig, hash: string): Promise<void> {
    if (this.closed) return;
    const current = this.entries.get(key);
    if (current?.hash === hash) return;
    if (current) {
      this.options.logger.info('Restarting backup worker with a new configuration', { etcdBackup: key });
      await this.stop(key);
    }
    await this.stopping.get(key);
    if (this.closed || this.entries.has(key)) return;
    const entry: Entry = { key, config, hash, phase: 'Starting', restarts: 0, startedAt: Date.now() };
    this.entries.set(key, entry);
    this.spawn(entry);
  }

  /**
   * Stops the worker of `key` (if any) and resolves once its process has exited; a worker still
   * running after `timeoutMs` (default stopTimeoutMs) is killed.
   */
  async stop(key: string, timeoutMs?: number): Promise<void> {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      clearTimeout(entry.restartTimer);
      const child = entry.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = this.terminate(key, child, timeoutMs ?? this.options.stopTimeoutMs ?? 30_000);
        this.stopping.set(key, exited);
        void exited.finally(() => {
          if (this.stopping.get(key) === exited) this.stopping.delete(key);
        });
      }
      this.options.listener.onChange(key);
    }
    await this.stopping.get(key);
  }

  /** Stops every worker; `timeoutMs` bounds how long any of them may take before it is killed. */
  async stopAll(timeoutMs?: number): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.keys()].map((key) => this.stop(key, timeoutMs)));
    await Promise.all([...this.stopping.values()]);
  }

  private spawn(entry: Entry): void {
    const { logger, listener } = this.options;
    const heapMb = Math.ceil(entry.config.resolved.budgetBytes / MiB) + (this.options.baseHeapMb ?? DEFAULT_BASE_HEAP_MB);
    const [namespace = '', name = entry.key] = entry.key.split('/');
    entry.phase = entry.restarts > 0 ? 'CrashLoop' : 'Starting';
    entry.startedAt = Date.now();
    entry.failure = undefined;
    let child: ChildProcess;
    try {
      child = fork(this.worker.modulePath, [], {
        execArgv: [...this.worker.execArgv, `--max-old-space-size=${heapMb}`],
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
    } catch (err) {
      this.crashed(entry, `cannot start worker process: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    entry.child = child;
    logger.info('Started backup worker process', { namespace, name, pid: child.pid, heapMb });
    child.on('message', (message: ChildMessage) => {
      if (this.entries.get(entry.key) !== entry) return;
      switch (message.type) {
        case 'started':
          entry.phase = 'Running';
          listener.onStarted(entry.key);
          listener.onChange(entry.key);
          break;
        case 'report':
          entry.report = message.report;
          listener.onReport(entry.key, message.report);
          listener.onChange(entry.key);
          break;
        case 'event':
          listener.onEvent(entry.key, message.event);
          break;
        case 'failed':
          entry.failure = `${message.reason}: ${message.message}`;
          break;
        case 'stopped':
          break;
      }
    });
    child.on('error', (err) => logger.warn('Backup worker process error', { namespace, name, error: err.message }));
    child.on('exit', (code, signal) => {
      if (this.entries.get(entry.key) !== entry || entry.child !== child) return;
      const how =
        signal === 'SIGKILL'
          ? 'was killed (SIGKILL; out of memory?)'
          : signal
            ? `was killed by ${signal}`
            : `exited with code ${code}`;
      this.crashed(entry, entry.failure ? `${entry.failure} (worker ${how})` : `worker process ${how}`);
    });
    const start: ParentMessage = {
      type: 'start',
      config: entry.config,
      labels: { namespace, name },
      log: this.options.log ?? { level: 'info', format: 'json' },
    };
    child.send(start, (err) => {
      if (err) logger.warn('Failed to send the configuration to the backup worker', { namespace, name, error: err.message });
    });
  }

  private crashed(entry: Entry, message: string): void {
    const { initialMs, maxMs } = this.options.restartBackoff ?? { initialMs: 1000, maxMs: 300_000 };
    if (Date.now() - entry.startedAt >= (this.options.stableAfterMs ?? 600_000)) entry.restarts = 0;
    entry.restarts += 1;
    entry.phase = 'CrashLoop';
    entry.lastError = message;
    entry.child = undefined;
    const delay = Math.min(maxMs, initialMs * 2 ** (entry.restarts - 1));
    entry.nextRestartTime = new Date(Date.now() + delay).toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.options.logger.warn('Backup worker failed; restarting with backoff', {
      etcdBackup: entry.key,
      error: message,
      restarts: entry.restarts,
      delayMs: delay,
    });
    entry.restartTimer = setTimeout(() => {
      if (this.entries.get(entry.key) === entry && !this.closed) this.spawn(entry);
    }, delay);
    this.options.listener.onCrash(entry.key, message, entry.restarts);
    this.options.listener.onChange(entry.key);
  }

  private terminate(key: string, child: ChildProcess, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.warn('Backup worker did not stop in time; killing it', { etcdBackup: key, pid: child.pid, timeoutMs });
        child.kill('SIGKILL');
      }, timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage, () => undefined);
      else child.kill('SIGTERM');
    });
  }
}
