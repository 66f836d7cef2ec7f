import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { isConflict, isNotFound, kubeErrorMessage } from './kube-errors.js';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection package:
 * - acquire: create the Lease, or take it over when its holder has not renewed for leaseDuration
 *   (measured on OUR clock from when we last saw the record change, so clock skew does not matter);
 * - every write is a replace carrying the resourceVersion we read: a 409 means someone else won;
 * - renew every retryPeriod; if renewals keep failing for renewDeadline, stop leading at once, by a
 *   timer (renewDeadline < leaseDuration, so we stop before anybody else can take over), and tell
 *   the caller how long until another replica may acquire: its writes must end before that.
 */
export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** How long a Lease is valid without renewal. Default 15 s (client-go's default). */
  leaseDurationMs?: number;
  /** Give up leading when renewals fail this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Between acquire attempts and renewals. Default 2 s. */
  retryPeriodMs?: number;
  logger: Logger;
}

export interface LeaderCallbacks {
  /** Called when this replica becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading(signal: AbortSignal): void;
  /**
   * Called once when this replica stops leading: at the renew deadline even while a renewal hangs.
   * `takeoverInMs`: how soon another replica may acquire the Lease (from our last successful
   * renewal's start plus the lease duration): every write must have stopped by then.
   */
  onStoppedLeading(info: { takeoverInMs: number }): void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: { record: string; at: number } | undefined;
  private leading: AbortController | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private lastHolder: string | undefined;

  constructor(kc: KubeConfig, private readonly options: LeaderElectionOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
  }

  isLeader(): boolean {
    return this.leading !== undefined && !this.leading.signal.aborted;
  }

  /** Campaigns, leads, and campaigns again after losing the Lease, until stop(). */
  run(callbacks: LeaderCallbacks): Promise<void> {
    this.running ??= this.loop(callbacks);
    return this.running;
  }

  private async loop(callbacks: LeaderCallbacks): Promise<void> {
    const { logger, namespace, name, identity } = this.options;
    while (!this.stopped) {
      let renewedAt = Date.now(); // an attempt's start: the Lease's renewTime is not earlier
      if (!(await this.tryAcquireOrRenew())) {
        await this.sleep(this.retryPeriodMs * (1 + Math.random() * 0.2));
        continue;
      }
      logger.info('Acquired leader Lease', { lease: `${namespace}/${name}`, identity });
      const leading = new AbortController();
      this.leading = leading;
      callbacks.onStartedLeading(leading.signal);
      const stopLeading = (lost: boolean): void => {
        if (leading.signal.aborted) return;
        if (lost) logger.warn('Lost leader Lease; stopping all work', { lease: `${namespace}/${name}`, identity });
        leading.abort();
        this.wake?.();
        callbacks.onStoppedLeading({ takeoverInMs: renewedAt + this.leaseDurationMs - Date.now() });
      };
      // A timer, not a check after each renewal: a renewal request that hangs must not delay the
      // stop past the deadline (another replica may acquire the Lease leaseDuration after renewedAt).
      let deadline = setTimeout(() => stopLeading(true), this.renewDeadlineMs);
      while (!this.stopped && !leading.signal.aborted) {
        await this.sleep(this.retryPeriodMs);
        if (this.stopped || leading.signal.aborted) break;
        const attempt = Date.now();
        if (await this.tryAcquireOrRenew()) {
          if (leading.signal.aborted) break;
          renewedAt = attempt;
          clearTimeout(deadline);
          deadline = setTimeout(() => stopLeading(true), Math.max(0, renewedAt + this.renewDeadlineMs - Date.now()));
        } else if (this.heldByOther()) {
          stopLeading(true);
        }
      }
      clearTimeout(deadline);
      stopLeading(false);
      if (!this.stopped) this.leading = undefined;
    }
  }

  /** Stops campaigning; gives the Lease up (so a successor need not wait it out) if we hold it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    // Wait for the loop so that no renewal races the release below.
    await this.running;
    if (!this.leading) return;
    this.leading = undefined;
    try {
      const lease = await this.api.readNamespacedLease({ namespace: this.options.namespace, name: this.options.name });
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime() };
      await this.api.replaceNamespacedLease({ namespace: this.options.namespace, name: this.options.name, body: lease });
      this.options.logger.info('Released leader Lease', { lease: `${this.options.namespace}/${this.options.name}` });
    } catch (err) {
      this.options.logger.warn('Failed to release leader Lease', { error: kubeErrorMessage(err) });
    }
  }

  private heldByOther(): boolean {
    return this.lastHolder !== undefined && this.lastHolder !== this.options.identity;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, logger } = this.options;
    const now = new V1MicroTime();
    const leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) {
        logger.warn('Failed to read leader Lease', { error: kubeErrorMessage(err) });
        return false;
      }
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        this.lastHolder = identity;
        return true;
      } catch (createErr) {
        if (!isConflict(createErr)) logger.warn('Failed to create leader Lease', { error: kubeErrorMessage(createErr) });
        return false;
      }
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity || undefined;
    this.lastHolder = holder;
    // Expiry is judged by when WE saw the record last change, never by comparing clocks.
    const record = JSON.stringify([holder, String(spec.renewTime ?? ''), spec.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder && holder !== identity && Date.now() < this.observed.at + duration) return false;

    const taking = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      acquireTime: taking ? now : asMicroTime(spec.acquireTime),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && holder ? 1 : 0),
    };
    try {
      await this.api.replaceNamespacedLease({ namespace, name, body: lease });
      this.lastHolder = identity;
      return true;
    } catch (err) {
      // 409: somebody wrote the Lease since we read it, most likely a rival acquiring it.
      if (!isConflict(err)) logger.warn('Failed to update leader Lease', { error: kubeErrorMessage(err) });
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/** client-node 1.4.0 does not deserialize V1MicroTime: it arrives as a string despite the type. */
function asMicroTime(value: unknown): V1MicroTime | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return new V1MicroTime(value instanceof Date ? value.getTime() : String(value));
}
