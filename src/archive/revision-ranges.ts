/**
 * Revision-range arithmetic over the archive: which revisions the delta objects cover without a gap.
 * The writers (the delta poller) and the readers (restore, the operator's store status) use the same
 * rules, so what one counts as archived the other can restore.
 */
import type { BackupListing } from './naming.js';

/** An inclusive range of etcd revisions. */
export interface RevisionRange {
  fromRevision: number;
  toRevision: number;
}

/**
 * Sorts by start and merges overlapping or adjacent ranges. The result holds the two revisions only:
 * callers pass whole uploaded segments (with their events) or listed objects, and a pending range
 * that kept them would keep their bytes alive after the budget was given back.
 */
export function mergeRanges(ranges: readonly RevisionRange[]): RevisionRange[] {
  const sorted = ranges
    .filter((r) => r.toRevision >= r.fromRevision)
    .map((r) => ({ fromRevision: r.fromRevision, toRevision: r.toRevision }))
    .sort((a, b) => a.fromRevision - b.fromRevision || a.toRevision - b.toRevision);
  const merged: RevisionRange[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last && range.fromRevision <= last.toRevision + 1) last.toRevision = Math.max(last.toRevision, range.toRevision);
    else merged.push(range);
  }
  return merged;
}

/**
 * Advances `archivedRevision` over the contiguous prefix of `completed` ranges (uploaded objects,
 * possibly overlapping, in any order). Ranges beyond the first gap stay pending.
 */
export function advanceContiguous(
  archivedRevision: number,
  completed: readonly RevisionRange[],
): { archivedRevision: number; pending: RevisionRange[] } {
  let archived = archivedRevision;
  const pending: RevisionRange[] = [];
  for (const range of mergeRanges(completed)) {
    if (range.toRevision <= archived) continue;
    if (range.fromRevision <= archived + 1) archived = range.toRevision;
    else pending.push(range);
  }
  return { archivedRevision: archived, pending };
}

/**
 * Where delta backups resume after a restart, from the store listing alone:
 *
 * The chain must be usable with the NEWEST full snapshot F (restores start from a full snapshot and
 * replay deltas after it). Every revision <= F is restorable through F itself, so the chain begins
 * at F: archivedRevision = the end of the run of delta objects that covers F+1, F+2, ... without a
 * gap (objects may start before F and overlap each other, e.g. after a crash-retry that cut a chunk
 * at a different revision). With no delta after F it is F itself: deltas resume right after the
 * snapshot. Without any full snapshot there is nothing to chain to: undefined (deltas wait).
 *
 * Delta objects past a gap are not counted (an object only proves its own range); the poller refetches
 * the gap and skips those objects when planning.
 */
export function recoverArchivedRevision(listing: Pick<BackupListing, 'fulls' | 'deltas'>): number | undefined {
  let newest: number | undefined;
  for (const full of listing.fulls) newest = newest === undefined ? full.revision : Math.max(newest, full.revision);
  if (newest === undefined) return undefined;
  return advanceContiguous(newest, listing.deltas).archivedRevision;
}
