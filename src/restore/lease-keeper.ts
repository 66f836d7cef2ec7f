/**
 * Keeps every lease of the etcd being restored alive while the replay runs.
 *
 * Why: a lease in the restored snapshot keeps ticking inside the temporary member. When a client
 * kept it alive in the source, the source never revoked it, so no DELETE for its keys is in the
 * deltas; left alone, the temporary member would revoke it when its TTL runs out mid-replay: an
 * extra revision that shifts every later one. The source's own expiries and revocations are in the
 * deltas as DELETE events and stay the only deletions. Leases are refreshed once more when the
 * restored member is started for real (etcd's lessor extends every lease on leader election).
 */
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/** Refresh period bounds: a third of the shortest TTL seen, never busier than MIN nor lazier than MAX. */
const MIN_ROUND_MS = 200;
const MAX_ROUND_MS = 1000;

export class LeaseKeeper {
  private readonly ids = new Set<string>();
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private opening: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** While the member restarts (suspend/resume): no calls that would fail against a stopped member. */
  private paused = false;
  /** Shortest TTL (seconds) a keepalive answer reported; sets the refresh period. */
  private shortestTtl = Infinity;

  private constructor(
    private readonly client: Etcd3,
    private readonly logger: Logger,
  ) {}

  /** Lists the member's leases and starts refreshing them. */
  static async start(client: Etcd3, logger: Logger): Promise<LeaseKeeper> {
    const keeper = new LeaseKeeper(client, logger);
    const { leases } = await client.leaseClient.leaseLeases();
    for (const lease of leases) keeper.add(lease.ID);
    if (leases.length > 0) logger.info('Keeping the restored leases alive during the replay', { leases: leases.length });
    return keeper;
  }

  /** Also keeps `id` alive (a lease the replay granted). */
  add(id: string): void {
    if (this.stopped || this.ids.has(id)) return;
    this.ids.add(id);
    this.stream?.write({ ID: id });
    if (!this.timer && !this.paused) this.schedule(0);
  }

  /** Stops keeping `id` alive (it is being revoked). */
  remove(id: string): void {
    this.ids.delete(id);
  }

  /** The leases being kept alive. */
  get leaseIds(): ReadonlySet<string> {
    return this.ids;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.opening?.catch(() => undefined);
    this.stream?.end();
    this.stream = undefined;
  }

  /**
   * Stops refreshing while the member restarts (restore restarts it to bound its memory): a stopped
   * member expires nothing, and etcd extends every lease when the restarted member becomes leader.
   * No keepalive fails against the stopped member, so the client's circuit breaker stays closed.
   */
  async suspend(): Promise<void> {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.opening?.catch(() => undefined);
    this.stream?.end();
    this.stream = undefined;
  }

  /** Refreshes again at once, on a new stream (after suspend). */
  resume(): void {
    this.paused = false;
    if (!this.stopped && !this.timer && this.ids.size > 0) this.schedule(0);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.round(), delayMs);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    if (this.stopped || this.paused) return;
    try {
      if (!this.stream) await (this.opening ??= this.open());
      for (const id of this.ids) this.stream?.write({ ID: id });
    } catch (err) {
      // The member may be busy; the next round retries. A lease lost meanwhile shows up as a
      // revision mismatch that names it (describeForeignRevisions).
      this.logger.debug('Lease keepalive round failed', { error: errorMessage(err) });
    }
    if (this.stopped || this.paused) return;
    const period = Number.isFinite(this.shortestTtl) ? (this.shortestTtl * 1000) / 3 : MIN_ROUND_MS;
    this.schedule(Math.min(MAX_ROUND_MS, Math.max(MIN_ROUND_MS, period)));
  }

  private async open(): Promise<void> {
    try {
      const stream = await this.client.leaseClient.leaseKeepAlive();
      stream.on('data', (response) => {
        const ttl = Number(response.TTL);
        if (ttl > 0 && ttl < this.shortestTtl) this.shortestTtl = ttl;
      });
      const lost = (err?: Error): void => {
        if (this.stream === stream) this.stream = undefined;
        if (err && !this.stopped) this.logger.debug('Lease keepalive stream ended', { error: errorMessage(err) });
      };
      stream.on('error', lost);
      stream.on('end', () => lost());
      if (this.stopped || this.paused) stream.end();
      else this.stream = stream;
    } finally {
      this.opening = undefined;
    }
  }
}
