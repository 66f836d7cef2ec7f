import type { SupervisorReport } from '../api/supervisor-report.js';
import type { SupervisorConfig, SupervisorEvent } from '../engine/supervisor-types.js';
import type { Logger } from '../observability/logger.js';
import type { WorkerState } from './conditions.js';
import { defaultWorkerModules, launchWorker, WORKER_NOUN, type RunnerModel, type WorkerHandle, type WorkerModule } from './runner-models.js';
import { DEFAULT_RUNNER_MODEL, type ChildMessage } from './worker-protocol.js';
import { admit, workerCost, type OperatorMemory } from './memory-admission.js';

/**
 * Runs each EtcdBackup's supervisor in its own worker, in the runner model chosen (runner-models.ts:
 * a child process, a worker thread, or in-process), so that one cluster's crash or exception cannot
 * take down the operator or the other clusters.
 * - Config and Secrets go over the worker protocol only (never argv or the environment).
 * - A process's or thread's V8 heap is capped at the memory budget plus a base.
 * - A worker that ends unexpectedly is restarted with exponential backoff; the crash is reported
 *   through the listener (condition + Event) and visible in `state()`.
 * - At most one worker per key exists at any time, also across restarts with a new config: a new
 *   worker starts only after the previous one has exited, so two never write the same store.
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
  /** How workers run; default DEFAULT_RUNNER_MODEL. */
  model?: RunnerModel;
  /** The memory the operator was given: a worker whose budget does not fit is refused. Default: no limit. */
  memory?: OperatorMemory;
  /** Override the forked worker's entry (tests). */
  worker?: WorkerModule;
}

type Phase = 'Starting' | 'Running' | 'CrashLoop';

interface Entry {
  key: string;
  config: SupervisorConfig;
  hash: string;
  phase: Phase;
  worker?: WorkerHandle;
  report?: SupervisorReport;
  restarts: number;
  lastError?: string;
  failure?: string;
  startedAt: number;
  restartTimer?: NodeJS.Timeout;
  nextRestartTime?: string;
  /** The snapshot request last sent to this worker (sent once per value and worker). */
  requestedSnapshot?: string;
}

const MiB = 2 ** 20;

/** Heap a worker needs besides its budget (code, etcd and S3 clients, bookkeeping); pod workers use it too. */
export const DEFAULT_BASE_HEAP_MB = 128;

export class SupervisorHost {
  private readonly entries = new Map<string, Entry>();
  /** Exits of children being stopped; a new child for the key waits for it. */
  private readonly stopping = new Map<string, Promise<void>>();
  /** Keys whose worker did not fit the operator's memory, with why; re-reconciled when room is made. */
  private readonly refused = new Map<string, string>();
  private readonly modules: { process: WorkerModule; thread: WorkerModule };
  private closed = false;

  constructor(private readonly options: SupervisorHostOptions) {
    const defaults = defaultWorkerModules();
    this.modules = { process: options.worker ?? defaults.process, thread: defaults.thread };
  }

  get model(): RunnerModel {
    return this.options.model ?? DEFAULT_RUNNER_MODEL;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  hashOf(key: string): string | undefined {
    return this.entries.get(key)?.hash;
  }

  state(key: string): WorkerState {
    const entry = this.entries.get(key);
    const refusal = this.refused.get(key);
    if (!entry && refusal !== undefined) return { phase: 'Refused', message: refusal };
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
    // Every admitted worker holds its share while it exists, also while it crash-loops.
    const admitted = [...this.entries.values()].map((e) => workerCost(this.model, e.config.resolved.budgetBytes));
    const admission = admit(this.options.memory ?? { baseBytes: 0 }, admitted, workerCost(this.model, config.resolved.budgetBytes));
    if (!admission.admitted) {
      if (this.refused.get(key) !== admission.message) {
        this.options.logger.warn('Refused to start a backup worker: its budget does not fit the operator memory', { etcdBackup: key, reason: admission.message });
      }
      this.refused.set(key, admission.message);
      return;
    }
    this.refused.delete(key);
    const entry: Entry = { key, config, hash, phase: 'Starting', restarts: 0, startedAt: Date.now() };
    this.entries.set(key, entry);
    this.spawn(entry);
  }

  /**
   * Asks the running worker of `key` for a full snapshot answering `requestedAt`, once per value and
   * worker: 'sent' now, 'pending' when sent before, 'notRunning' when no worker runs yet.
   */
  requestSnapshot(key: string, requestedAt: string): 'sent' | 'pending' | 'notRunning' {
    const entry = this.entries.get(key);
    const worker = entry?.worker;
    if (!entry || entry.phase !== 'Running' || !worker?.connected()) return 'notRunning';
    if (entry.requestedSnapshot === requestedAt) return 'pending';
    entry.requestedSnapshot = requestedAt;
    worker.send({ type: 'snapshot', requestedAt });
    return 'sent';
  }

  /**
   * Fault injection for isolation tests: the running worker of `key` throws `message` from inside its
   * work, or (`heap`) leaks until its heap cap ends it, as a bug would. False when no worker runs.
   */
  injectFault(key: string, message: string, kind: 'exception' | 'heap' = 'exception'): boolean {
    const worker = this.entries.get(key)?.worker;
    if (!worker?.connected()) return false;
    worker.send({ type: 'fault', kind, message });
    return true;
  }

  /**
   * Stops the worker of `key` (if any) and resolves once its process has exited; a worker still
   * running after `timeoutMs` (default stopTimeoutMs) is killed.
   */
  async stop(key: string, timeoutMs?: number): Promise<void> {
    this.refused.delete(key);
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      clearTimeout(entry.restartTimer);
      const worker = entry.worker;
      if (worker) {
        const exited = this.terminate(key, worker, timeoutMs ?? this.options.stopTimeoutMs ?? 30_000);
        this.stopping.set(key, exited);
        void exited.finally(() => {
          if (this.stopping.get(key) === exited) this.stopping.delete(key);
        });
      }
      this.options.listener.onChange(key);
      // Room was made: the ones refused before may fit now.
      for (const waiting of this.refused.keys()) this.options.listener.onChange(waiting);
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
    const { logger } = this.options;
    const heapMb = Math.ceil(entry.config.resolved.budgetBytes / MiB) + (this.options.baseHeapMb ?? DEFAULT_BASE_HEAP_MB);
    const [namespace = '', name = entry.key] = entry.key.split('/');
    entry.phase = entry.restarts > 0 ? 'CrashLoop' : 'Starting';
    entry.startedAt = Date.now();
    entry.failure = undefined;
    entry.requestedSnapshot = undefined;
    const model = this.model;
    let worker: WorkerHandle;
    try {
      worker = launchWorker(model, { heapMb, ...this.modules }, {
        onMessage: (message) => {
          if (this.entries.get(entry.key) === entry && entry.worker === worker) this.received(entry, message);
        },
        onError: (message) => logger.warn('Backup worker error', { namespace, name, model, error: message }),
        onExit: (how) => {
          if (this.entries.get(entry.key) !== entry || entry.worker !== worker) return;
          this.crashed(entry, entry.failure ? `${entry.failure} (worker ${how})` : `${WORKER_NOUN[model]} ${how}`);
        },
      });
    } catch (err) {
      this.crashed(entry, `cannot start worker (${model}): ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    entry.worker = worker;
    // The message predates the runner models; tests and dashboards look for it.
    logger.info('Started backup worker process', { namespace, name, model, ...worker.labels, heapMb });
    worker.send({
      type: 'start',
      config: entry.config,
      labels: { namespace, name },
      log: this.options.log ?? { level: 'info', format: 'json' },
    });
  }

  private received(entry: Entry, message: ChildMessage): void {
    const { listener } = this.options;
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
  }

  private crashed(entry: Entry, message: string): void {
    const { initialMs, maxMs } = this.options.restartBackoff ?? { initialMs: 1000, maxMs: 300_000 };
    if (Date.now() - entry.startedAt >= (this.options.stableAfterMs ?? 600_000)) entry.restarts = 0;
    entry.restarts += 1;
    entry.phase = 'CrashLoop';
    entry.lastError = message;
    entry.worker = undefined;
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

  private terminate(key: string, worker: WorkerHandle, timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => {
      this.options.logger.warn('Backup worker did not stop in time; killing it', { etcdBackup: key, ...worker.labels, timeoutMs });
      worker.kill();
    }, timeoutMs);
    worker.send({ type: 'stop' });
    return worker.exited.finally(() => clearTimeout(timer));
  }
}
