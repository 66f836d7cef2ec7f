import { advanceContiguous } from '../archive/revision-ranges.js';
import type { BackupListing, DeltaName, FullSnapshotName } from '../archive/naming.js';

export interface RestoreTarget {
  /** Restore exactly this revision. */
  toRevision?: number;
  /** Restore what was archived at this time (objects stored at or before it). */
  toTime?: Date;
}

/**
 * Full snapshots that may serve the target, newest first (pure). A snapshot's name carries a lower
 * bound of its revision, so the restorer checks the real revision after restoring and falls back
 * to the next candidate when it is past the target.
 */
export function snapshotCandidates(listing: BackupListing, target: RestoreTarget): FullSnapshotName[] {
  return listing.fulls
    .filter((full) => target.toRevision === undefined || full.revision <= target.toRevision)
    .filter((full) => target.toTime === undefined || full.time.getTime() <= target.toTime.getTime())
    .reverse();
}

/**
 * The last revision reachable from `afterRevision` through contiguous deltas (pure): the same
 * contiguous-prefix rule the delta poller uses to advance its archive.
 */
export function contiguousChainEnd(deltas: readonly DeltaName[], afterRevision: number): number {
  return advanceContiguous(afterRevision, deltas).archivedRevision;
}
