import { makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { kubeErrorMessage } from './kube-errors.js';

/**
 * client-node 1.4.0's informer made dependable (see library-facts.md):
 * - it relists by itself only on 410 Gone; on any other error (500, network, failed list) it emits
 *   `error` once and STOPS: we start it again with exponential backoff (it resumes from its last
 *   resourceVersion, and relists if that is too old);
 * - it has no watch inactivity timeout, so a silently dead watch would hang forever: every
 *   `relistIntervalMs` we replace it with a fresh informer (full list + new watch), which is also
 *   the periodic resync;
 * - a handler that throws crashes the process: handlers are wrapped and must only enqueue.
 */
export interface InformerHandlers<T> {
  /** Added, updated or deleted: the controller only needs to know which object to look at. */
  onObject(obj: T): void;
  /** A fresh informer has listed: objects deleted while unwatched get no delete event, so re-check everything. */
  onRelisted(): void;
}

export interface ResilientInformerOptions<T extends KubernetesObject> {
  /** For log lines, e.g. "etcdbackups". */
  name: string;
  kc: KubeConfig;
  /** Watch path, e.g. /apis/etcdbackup.io/v1alpha1/namespaces/ns/etcdbackups. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  handlers: InformerHandlers<T>;
  logger: Logger;
  /** Default 5 min. */
  relistIntervalMs?: number;
  /** Restart backoff after errors: doubling from initial to max. Default 1 s .. 60 s. */
  backoff?: { initialMs: number; maxMs: number };
}

export class ResilientInformer<T extends KubernetesObject> {
  private current: (Informer<T> & ObjectCache<T>) | undefined;
  private generation = 0;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  private listed = false;

  constructor(private readonly options: ResilientInformerOptions<T>) {}

  /** True once the first list has succeeded (readiness). */
  hasSynced(): boolean {
    return this.listed;
  }

  list(): ReadonlyArray<T> {
    return this.current?.list() ?? [];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.replace();
    const interval = this.options.relistIntervalMs ?? 300_000;
    this.relistTimer = setInterval(() => {
      this.options.logger.debug('Relisting periodically', { informer: this.options.name });
      this.replace();
    }, interval);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.relistTimer);
    const informer = this.current;
    this.current = undefined;
    this.generation++;
    await informer?.stop();
  }

  /** Drops the current informer (its late errors are ignored) and starts a fresh one. */
  private replace(): void {
    const old = this.current;
    this.generation++;
    void old?.stop();
    clearTimeout(this.restartTimer);
    const generation = this.generation;
    const { logger, name, handlers } = this.options;
    const mine = () => generation === this.generation && !this.stopped;

    const informer = makeInformer<T>(this.options.kc, this.options.path, async () => {
      const list = await this.options.list();
      if (mine()) {
        this.listed = true;
        this.failures = 0;
        // The informer fills its cache right after this resolves; let it, then re-check everything.
        setImmediate(() => mine() && safely(logger, name, () => handlers.onRelisted()));
      }
      return list;
    });
    const onObject = (obj: T) => {
      if (mine()) safely(logger, name, () => handlers.onObject(obj));
    };
    informer.on('add', onObject);
    informer.on('update', onObject);
    informer.on('delete', onObject);
    const restartLater = (err: unknown) => {
      if (!mine()) return; // our own stop() aborts the watch with an error
      this.failures++;
      const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
      const delay = Math.min(maxMs, initialMs * 2 ** (this.failures - 1));
      logger.warn('Watch failed; restarting it', { informer: name, error: kubeErrorMessage(err), retryInMs: delay });
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => {
        if (mine()) informer.start().catch(restartLater);
      }, delay);
    };
    informer.on('error', restartLater);
    this.current = informer;
    informer.start().catch(restartLater);
  }
}

function safely(logger: Logger, informer: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error('Informer handler failed', { informer, error: err instanceof Error ? err.message : String(err) });
  }
}
