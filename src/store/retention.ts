import type { BackupListing, FullSnapshotName } from './naming.js';

export interface RetentionPolicy {
  policy: 'LimitBased' | 'Exponential';
  maxFullSnapshots: number;
}

export interface RetentionPlan {
  keep: FullSnapshotName[];
  /** Keys to delete: full snapshots past the policy and deltas that end before the oldest kept full. */
  deleteKeys: string[];
}

/**
 * Decides what to delete from a listing (pure). LimitBased keeps the newest `maxFullSnapshots`
 * full snapshots. Deltas are kept while they may still be replayed on top of a kept snapshot:
 * a delta is deleted only when it ends at or before the oldest kept snapshot's revision.
 * With no full snapshot nothing is deleted: deltas alone are not restorable, but they are all we have.
 */
export function planRetention(listing: BackupListing, policy: RetentionPolicy): RetentionPlan {
  if (listing.fulls.length === 0) return { keep: [], deleteKeys: [] };
  if (policy.policy !== 'LimitBased') {
    // Validation rejects other policies until they are built; never guess what to delete.
    throw new RangeError(`retention policy ${policy.policy} is not supported`);
  }
  const limit = Math.max(1, policy.maxFullSnapshots);
  const keep = listing.fulls.slice(-limit);
  const dropped = listing.fulls.slice(0, listing.fulls.length - keep.length);
  const oldestKept = keep[0]!.revision;
  const staleDeltas = listing.deltas.filter((delta) => delta.toRevision <= oldestKept);
  return { keep, deleteKeys: [...dropped.map((f) => f.key), ...staleDeltas.map((d) => d.key)] };
}
