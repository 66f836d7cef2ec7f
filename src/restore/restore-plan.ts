import { advanceContiguous, mergeRanges, type RevisionRange } from '../archive/revision-ranges.js';
import type { BackupListing, FullSnapshotName } from '../archive/naming.js';
import type { EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';

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
export function contiguousChainEnd(deltas: readonly RevisionRange[], afterRevision: number): number {
  return advanceContiguous(afterRevision, deltas).archivedRevision;
}

/** The revisions (and store times) a restore can reach: one contiguous range ending at the newest archived revision. */
export interface RecoverableWindow {
  firstRevision: number;
  /** When the full snapshot that reaches firstRevision was stored. */
  firstTime: Date;
  lastRevision: number;
  /** When the last object needed to reach lastRevision was stored (what restore --to-time compares with). */
  lastTime: Date;
}

export interface RestoreReach {
  window: RecoverableWindow;
  /** Delta revisions a restore to the latest point replays now: the chain after the newest full snapshot. */
  replayRevisions: number;
}

/**
 * What a restore can reach from a store listing (pure), by the rules restore follows: the latest point
 * is the end of the contiguous deltas after the newest full snapshot; an older snapshot extends the
 * window back only while its own deltas reach the next snapshot's revision (a gap cuts it there).
 * `storedAt` gives each object's store time (listing lastModified); undefined without a full snapshot.
 */
export function restoreReach(listing: Pick<BackupListing, 'fulls' | 'deltas'>, storedAt: ReadonlyMap<string, Date>): RestoreReach | undefined {
  const newest = listing.fulls.at(-1);
  if (!newest) return undefined;
  // Merged once (the supervisor calls this after every delta upload): few ranges remain, so each
  // snapshot's chain end below is a walk over them, not another sort of every delta.
  const ranges = mergeRanges(listing.deltas);
  const lastRevision = contiguousChainEnd(ranges, newest.revision);
  let lastTime = newest.time;
  for (const delta of listing.deltas) {
    const time = storedAt.get(delta.key);
    if (time && delta.toRevision > newest.revision && delta.toRevision <= lastRevision && time.getTime() > lastTime.getTime()) lastTime = time;
  }
  let first = newest;
  for (const older of listing.fulls.slice(0, -1).reverse()) {
    if (contiguousChainEnd(ranges, older.revision) < first.revision - 1) break;
    first = older;
  }
  return {
    window: { firstRevision: first.revision, firstTime: first.time, lastRevision, lastTime },
    replayRevisions: lastRevision - newest.revision,
  };
}

/** restoreReach as EtcdBackup status shows it (times in RFC 3339), from a listing and its objects' store times. */
export function reachStatus(
  listing: Pick<BackupListing, 'fulls' | 'deltas'>,
  objects: Iterable<{ key: string; lastModified: Date }>,
): Pick<EtcdBackupStatus, 'recoverableWindow' | 'replayRevisions'> {
  const storedAt = new Map<string, Date>();
  for (const object of objects) storedAt.set(object.key, object.lastModified);
  const reach = restoreReach(listing, storedAt);
  if (!reach) return {};
  const { window } = reach;
  return {
    recoverableWindow: {
      firstRevision: window.firstRevision,
      firstTime: window.firstTime.toISOString(),
      lastRevision: window.lastRevision,
      lastTime: window.lastTime.toISOString(),
    },
    replayRevisions: reach.replayRevisions,
  };
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
