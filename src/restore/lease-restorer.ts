/**
 * Restores the source's leases during the replay: a key the source wrote on a lease is written on a
 * lease with the same ID and granted TTL in the restored member.
 *
 * - A lease the restored snapshot already holds is used as it is.
 * - Another lease is granted (LeaseGrant with the source's ID and the TTL the delta worker recorded,
 *   see LEASE_GONE in src/archive/delta-format.ts) before the txn that first uses it; a grant makes
 *   no revision. The LeaseKeeper keeps it alive until the member stops.
 * - A lease that was already gone when the delta worker first saw it, or one from an object written
 *   before TTLs were recorded, cannot be granted faithfully: its keys are written without a lease and
 *   the summary names it.
 * - At the end, a lease that held keys during the replay and holds none any more is revoked: in the
 *   source that is what a revocation or an expiry leaves behind (the deletions are in the deltas).
 *   Revoking a lease without keys makes no revision.
 */
import type { Etcd3 } from 'etcd3';
import { LEASE_GONE, type RevisionEvents } from '../archive/delta-format.js';
import type { LeaseKeeper } from './lease-keeper.js';

export interface LeaseSummary {
  /** Leases granted by the replay with the source's ID and TTL. */
  granted: number;
  /** Leases revoked at the end because they lost all their keys (revoked or expired in the source). */
  revoked: number;
  /** Lease IDs (decimal) that were gone when archived: their keys were written without a lease. */
  goneWhenArchived: string[];
  /** Lease IDs from objects without recorded TTLs (written before issue 13): keys without a lease. */
  withoutTtl: string[];
}

/** The summary of a replay that touched no lease. */
export function noLeaseChanges(): LeaseSummary {
  return { granted: 0, revoked: 0, goneWhenArchived: [], withoutTtl: [] };
}

/** One line for people, empty when every key kept its lease (pure). */
export function describeLeaseSummary(summary: LeaseSummary): string {
  const parts: string[] = [];
  if (summary.granted > 0) parts.push(`${summary.granted} lease(s) granted with the source's IDs and TTLs`);
  if (summary.revoked > 0) parts.push(`${summary.revoked} revoked after losing their keys`);
  const ids = (list: string[]): string =>
    list.slice(0, 5).map((id) => BigInt(id).toString(16)).join(', ') + (list.length > 5 ? ', ...' : '');
  if (summary.goneWhenArchived.length > 0) {
    parts.push(`keys of ${summary.goneWhenArchived.length} lease(s) already gone when archived were written without a lease (hex IDs ${ids(summary.goneWhenArchived)})`);
  }
  if (summary.withoutTtl.length > 0) {
    parts.push(`keys of ${summary.withoutTtl.length} lease(s) from delta objects without recorded TTLs were written without a lease (hex IDs ${ids(summary.withoutTtl)})`);
  }
  return parts.join('; ');
}

export class LeaseRestorer {
  private readonly ttls = new Map<string, number>();
  /** Leases that held keys at some point of the replay. */
  private readonly heldKeys = new Set<string>();
  private readonly gone = new Set<string>();
  private readonly unknown = new Set<string>();
  private granted = 0;
  private revoked = 0;

  private constructor(
    private readonly client: Etcd3,
    private readonly keeper: LeaseKeeper,
  ) {}

  /** Notes which of the member's (snapshot) leases hold keys before the replay starts. */
  static async start(client: Etcd3, keeper: LeaseKeeper): Promise<LeaseRestorer> {
    const restorer = new LeaseRestorer(client, keeper);
    for (const id of keeper.leaseIds) {
      if (await restorer.holdsKeys(id)) restorer.heldKeys.add(id);
    }
    return restorer;
  }

  /** Records the TTLs a revision carries; called for every decoded revision, also skipped ones. */
  learn(revision: RevisionEvents): void {
    for (const event of revision.events) {
      if (event.leaseTtl !== undefined && !this.ttls.has(event.lease)) this.ttls.set(event.lease, event.leaseTtl);
    }
  }

  /**
   * Makes every lease `revision` writes on exist in the member, granting it when needed; an event
   * whose lease cannot be granted gets lease "0" (written without one).
   */
  async prepare(revision: RevisionEvents): Promise<void> {
    for (const event of revision.events) {
      if (event.type !== 'PUT' || event.lease === '0') continue;
      if (!this.keeper.leaseIds.has(event.lease)) {
        const ttl = this.ttls.get(event.lease);
        if (ttl === undefined || ttl === LEASE_GONE) {
          (ttl === undefined ? this.unknown : this.gone).add(event.lease);
          event.lease = '0';
          continue;
        }
        await this.client.leaseClient.leaseGrant({ ID: event.lease, TTL: ttl });
        this.keeper.add(event.lease);
        this.granted += 1;
      }
      this.heldKeys.add(event.lease);
    }
  }

  /** Revokes the leases that lost all their keys during the replay; call after the last revision. */
  async finish(): Promise<LeaseSummary> {
    for (const id of this.heldKeys) {
      if (await this.holdsKeys(id)) continue;
      this.keeper.remove(id);
      await this.client.leaseClient.leaseRevoke({ ID: id });
      this.revoked += 1;
    }
    this.heldKeys.clear();
    return this.summary;
  }

  get summary(): LeaseSummary {
    return { granted: this.granted, revoked: this.revoked, goneWhenArchived: [...this.gone], withoutTtl: [...this.unknown] };
  }

  private async holdsKeys(id: string): Promise<boolean> {
    const response = await this.client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    return Number(response.TTL) >= 0 && response.keys.length > 0;
  }
}
