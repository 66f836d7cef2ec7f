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

/** etcd's default backend quota, and the largest it supports (it warns beyond). */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;
export const ETCD_MAX_QUOTA_BYTES = 8 * 1024 ** 3;
/**
 * How many plain bytes a stored delta byte may stand for: gzip of base64 JSON shrinks text values
 * several times, zstd level 1 about as much (random values not at all). Over-estimating costs nothing (the quota is a limit,
 * not an allocation); under-estimating fails the restore with "database space exceeded".
 */
const COMPRESSED_DELTA_EXPANSION = 8;

/**
 * The backend quota of restore's temporary member (pure): room for the snapshot's db plus every
 * replayed value (the replay keeps all revisions: nothing compacts them), with half again for bbolt's
 * free pages; never below etcd's default, never above its maximum.
 */
export function temporaryQuotaBytes(sizes: ReplaySizes): number {
  const wanted = Math.ceil((sizes.snapshotDbBytes + plainDeltaBytes(sizes)) * 1.5);
  return Math.min(ETCD_MAX_QUOTA_BYTES, Math.max(ETCD_DEFAULT_QUOTA_BYTES, wanted));
}

/** What a restore will replay: the snapshot's db and the stored bytes of the deltas after it. */
export interface ReplaySizes {
  snapshotDbBytes: number;
  deltaBytes: number;
  deltasCompressed: boolean;
}

function plainDeltaBytes(sizes: ReplaySizes): number {
  return sizes.deltaBytes * (sizes.deltasCompressed ? COMPRESSED_DELTA_EXPANSION : 1);
}

/** Where restore replays on tmpfs by default (Linux's shared-memory tmpfs). */
export const TMPFS_DIR = '/dev/shm';

/**
 * The bytes the temporary member's data dir may reach (pure): the db (snapshot plus every replayed
 * value, nothing compacted), the WAL that holds the replayed values once more, and a quarter again
 * for bbolt's free pages.
 */
export function replayDirBytes(sizes: ReplaySizes): number {
  return Math.ceil((sizes.snapshotDbBytes + 2 * plainDeltaBytes(sizes)) * 1.25);
}

/**
 * Whether the replay's data dir goes on tmpfs (pure): only when it fits in the tmpfs's free space
 * and in half the memory available, since tmpfs pages are memory that the temporary member and the
 * rest of the machine need too.
 */
export function replayDirPlacement(space: { expectedBytes: number; tmpfsFreeBytes: number; memAvailableBytes: number }): 'tmpfs' | 'disk' {
  return space.expectedBytes <= space.tmpfsFreeBytes && space.expectedBytes <= space.memAvailableBytes / 2 ? 'tmpfs' : 'disk';
}
