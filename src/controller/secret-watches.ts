import { Watch, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { kubeErrorMessage } from './kube-errors.js';

/**
 * Watches exactly the Secrets that EtcdBackups reference, one watch per Secret narrowed by
 * `fieldSelector=metadata.name=NAME`, so that a rotated Secret re-triggers its EtcdBackups' reconcile.
 * Nothing is cached: an event only says which EtcdBackups to look at (reconcile reads the Secret
 * with a get), and the API server never sends the operator a Secret that no EtcdBackup names.
 * A cluster-wide Secret informer held every Secret's data in memory (Helm releases, TLS keys).
 *
 * A watch without a resourceVersion starts with the Secret as it is (ADDED), so a Secret created
 * or changed while no watch ran is noticed when the watch (re)starts. Watches end on the server
 * after `timeoutSeconds` and start again: a silently dead watch cannot hang for long.
 */
export interface SecretWatchesOptions {
  kc: KubeConfig;
  logger: Logger;
  /** A referenced Secret appeared, changed or went away: reconcile these EtcdBackup keys. */
  onChange(keys: string[]): void;
  /** Server-side watch timeout; default 300 s. */
  timeoutSeconds?: number;
  /** Restart backoff after errors: doubling from initial to max. Default 1 s .. 60 s. */
  backoff?: { initialMs: number; maxMs: number };
}

interface RunningWatch {
  stop(): void;
}

export class SecretWatches {
  /** EtcdBackup key -> the `namespace/name` of every Secret it references. */
  private readonly references = new Map<string, Set<string>>();
  private readonly watches = new Map<string, RunningWatch>();
  private stopped = false;

  constructor(private readonly options: SecretWatchesOptions) {}

  /** Sets the Secrets `key` references (replacing what it referenced before) and watches them. */
  set(key: string, namespace: string, names: Iterable<string>): void {
    this.references.set(key, new Set([...names].map((name) => `${namespace}/${name}`)));
    this.sync();
  }

  /** `key` references nothing any more; watches nobody else needs are stopped. */
  delete(key: string): void {
    if (this.references.delete(key)) this.sync();
  }

  /** The `namespace/name` of every Secret watched now (for tests and diagnostics). */
  watched(): string[] {
    return [...this.watches.keys()].sort();
  }

  stop(): void {
    this.stopped = true;
    for (const watch of this.watches.values()) watch.stop();
    this.watches.clear();
  }

  private sync(): void {
    if (this.stopped) return;
    const wanted = new Set<string>();
    for (const secrets of this.references.values()) for (const secret of secrets) wanted.add(secret);
    for (const [secret, watch] of this.watches) {
      if (!wanted.has(secret)) {
        watch.stop();
        this.watches.delete(secret);
      }
    }
    for (const secret of wanted) if (!this.watches.has(secret)) this.watches.set(secret, this.start(secret));
  }

  private keysReferencing(secret: string): string[] {
    return [...this.references].filter(([, secrets]) => secrets.has(secret)).map(([key]) => key);
  }

  private start(secret: string): RunningWatch {
    const [namespace = '', name = ''] = secret.split('/');
    const { kc, logger } = this.options;
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    let stopped = false;
    let failures = 0;
    let lastVersion: string | undefined;
    let abort: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    /** Set when we abort the watch after an ERROR event: its end is then ours, not a second failure. */
    let restartAfterError: number | undefined;

    const backoff = (): number => {
      failures++;
      return Math.min(maxMs, initialMs * 2 ** (failures - 1));
    };
    const onEvent = (type: string, obj: V1Secret | { message?: string }): void => {
      if (stopped || restartAfterError !== undefined) return;
      if (type === 'ERROR') {
        restartAfterError = backoff();
        logger.warn('Secret watch reported an error; restarting it', {
          object: `Secret ${secret}`,
          error: (obj as { message?: string }).message,
          retryInMs: restartAfterError,
        });
        abort?.abort();
        return;
      }
      failures = 0;
      const version = (obj as V1Secret).metadata?.resourceVersion;
      // A restarted watch replays the Secret as ADDED: unchanged, nothing to reconcile.
      if (type !== 'DELETED' && version !== undefined && version === lastVersion) return;
      lastVersion = type === 'DELETED' ? undefined : version;
      const keys = this.keysReferencing(secret);
      if (keys.length > 0) this.options.onChange(keys);
    };
    const restart = (delay: number): void => {
      restartAfterError = undefined;
      timer = setTimeout(run, delay);
    };
    const run = (): void => {
      if (stopped) return;
      new Watch(kc)
        .watch(
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
          { fieldSelector: `metadata.name=${name}`, timeoutSeconds: this.options.timeoutSeconds ?? 300 },
          onEvent,
          (err: unknown) => {
            if (stopped) return;
            // Our own abort after an ERROR event: already logged and counted once.
            if (restartAfterError !== undefined) return restart(restartAfterError);
            if (!err) return restart(0);
            const delay = backoff();
            logger.warn('Secret watch failed; restarting it', { object: `Secret ${secret}`, error: kubeErrorMessage(err), retryInMs: delay });
            restart(delay);
          },
        )
        .then((controller) => {
          abort = controller;
          if (stopped) controller.abort();
        })
        .catch((err: unknown) => {
          if (stopped) return;
          const delay = backoff();
          logger.warn('Secret watch failed; restarting it', { object: `Secret ${secret}`, error: kubeErrorMessage(err), retryInMs: delay });
          restart(delay);
        });
    };
    run();
    return {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
        abort?.abort();
      },
    };
  }
}
