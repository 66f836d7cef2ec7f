/**
 * Granted TTLs of the leases the delta worker meets in events, so restore can grant them again with
 * the same IDs and TTLs (see LEASE_GONE in src/archive/delta-format.ts).
 */
import type { Etcd3 } from 'etcd3';
import { LEASE_GONE, firstLeaseUses, type DeltaEvent } from '../archive/delta-format.js';

/** Lease TTLs read once; bounded, since a cluster may churn through many leases (Kubernetes events). */
const MAX_REMEMBERED = 65_536;

export class LeaseTtlReader {
  private readonly known = new Map<string, number>();

  constructor(private readonly client: Etcd3) {}

  /** The lease's granted TTL in seconds, or LEASE_GONE when it was revoked or has expired. */
  async grantedTtl(id: string): Promise<number> {
    const remembered = this.known.get(id);
    if (remembered !== undefined) return remembered;
    // etcd answers TTL -1 (not an error) for a lease it does not have.
    const response = await this.client.leaseClient.leaseTimeToLive({ ID: id });
    const ttl = Number(response.TTL) < 0 ? LEASE_GONE : Number(response.grantedTTL);
    if (this.known.size >= MAX_REMEMBERED) this.known.clear();
    this.known.set(id, ttl);
    return ttl;
  }
}

/** Gives each lease's first event in `events` (one object's) the lease's granted TTL, as the format says. */
export async function recordLeaseTtls(events: DeltaEvent[], reader: LeaseTtlReader): Promise<void> {
  for (const [lease, index] of firstLeaseUses(events)) events[index]!.leaseTtl = await reader.grantedTtl(lease);
}
