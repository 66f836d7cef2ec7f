/**
 * Pure planning for delta backups: which revision ranges to fetch, how far the archive reaches, and
 * how the memory budget is split between parallel fetches. No I/O here; the poller does that.
 */
import type { BackupListing } from '../store/naming.js';

/** An inclusive range of etcd revisions. */
export interface RevisionRange {
  fromRevision: number;
  toRevision: number;
}

/** Sorts by start and merges overlapping or adjacent ranges. */
export function mergeRanges(ranges: readonly RevisionRange[]): RevisionRange[] {
  const sorted = ranges
    .filter((r) => r.toRevision >= r.fromRevision)
    .map((r) => ({ ...r }))
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
 * Chunks of at most `chunkRevisions` revisions over (archivedRevision, headRevision], in order,
 * skipping revisions already `covered` by uploaded objects (ranges past a gap found at recovery).
 */
export function planChunks(
  archivedRevision: number,
  headRevision: number,
  chunkRevisions: number,
  covered: readonly RevisionRange[] = [],
): RevisionRange[] {
  if (!Number.isSafeInteger(chunkRevisions) || chunkRevisions < 1) {
    throw new RangeError(`chunkRevisions must be a positive integer, got ${chunkRevisions}`);
  }
  const chunks: RevisionRange[] = [];
  let next = archivedRevision + 1;
  const addGap = (from: number, to: number): void => {
    for (let start = from; start <= to; start += chunkRevisions) {
      chunks.push({ fromRevision: start, toRevision: Math.min(to, start + chunkRevisions - 1) });
    }
  };
  for (const range of mergeRanges(covered)) {
    if (range.toRevision < next) continue;
    if (range.fromRevision > headRevision) break;
    addGap(next, Math.min(range.fromRevision - 1, headRevision));
    next = Math.max(next, range.toRevision + 1);
  }
  addGap(next, headRevision);
  return chunks;
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

/** How the memory budget is divided among delta fetches. */
export interface FetchBudgetPlan {
  /** Fetches run at once (may be lower than requested when the budget is small). */
  parallelism: number;
  /** Reserved by each fetch for its lifetime: watch receive buffer + upload encoder (+ store buffers). */
  windowBytes: number;
  /** Event bytes one fetch holds before it uploads what it has as a (smaller) delta object. */
  segmentBytes: number;
}

/**
 * A watch response is at most etcd's --max-request-bytes (1.5 MiB by default) when fragmentation is
 * on, and the fetch reads one at a time: that is the receive part of a fetch's window.
 */
export const WATCH_RECEIVE_BYTES = 1536 * 1024;
/** The delta encoder's chunks, gzip state and the local store's write buffer stay well below this. */
export const UPLOAD_ENCODER_BYTES = 512 * 1024;
/**
 * Least event room per fetch: one etcd revision is bounded by --max-request-bytes (1.5 MiB default),
 * and a fetch must be able to hold at least one whole revision, with some slack for batching.
 */
export const MIN_SEGMENT_BYTES = 2 * 1024 * 1024;

export interface FetchBudgetInput {
  budgetBytes: number;
  parallelism: number;
  /** Bytes the store reserves from the same budget per concurrent upload (S3 part buffers); 0 for local. */
  storeBufferBytes?: number;
  /** Bytes of the encrypting stream per upload (ENCRYPT_STREAM_BYTES) when deltas are encrypted; default 0. */
  encryptionBytes?: number;
  /**
   * Largest delta object (encoded bytes) to write. A store that needs more budget for bigger objects
   * (S3: a multipart upload reserves further parts while it runs) sets this to what it uploads in one
   * request, so an upload never waits for budget that fetches hold.
   */
  maxObjectBytes?: number;
}

/** The least budget that runs `parallelism` delta fetches (a spec validator can report it). */
export function minimumDeltaBudgetBytes(parallelism: number, storeBufferBytes = 0, encryptionBytes = 0): number {
  return parallelism * (WATCH_RECEIVE_BYTES + UPLOAD_ENCODER_BYTES + storeBufferBytes + encryptionBytes + MIN_SEGMENT_BYTES);
}

/**
 * Splits the budget: each fetch gets an equal share = its window + room for events. Parallelism is
 * lowered rather than giving a fetch less than MIN_SEGMENT_BYTES; a budget too small for even one
 * fetch is an error. Store buffers are part of the window so that an upload never has to wait for
 * memory while its fetch holds events (which could deadlock the budget).
 */
export function planFetchBudget(input: FetchBudgetInput): FetchBudgetPlan {
  const storeBufferBytes = input.storeBufferBytes ?? 0;
  const encryptionBytes = input.encryptionBytes ?? 0;
  // The fetch holds its window for its lifetime, so its upload's encoder (and encrypting stream) is accounted.
  const windowBytes = WATCH_RECEIVE_BYTES + UPLOAD_ENCODER_BYTES + storeBufferBytes + encryptionBytes;
  const fits = Math.floor(input.budgetBytes / (windowBytes + MIN_SEGMENT_BYTES));
  if (fits < 1) {
    throw new RangeError(
      `memory budget of ${input.budgetBytes} bytes is too small for delta backups: ` +
        `need at least ${minimumDeltaBudgetBytes(1, storeBufferBytes, encryptionBytes)} bytes`,
    );
  }
  const parallelism = Math.max(1, Math.min(Math.floor(input.parallelism), fits));
  const share = Math.floor(input.budgetBytes / parallelism);
  let segmentBytes = share - windowBytes;
  if (input.maxObjectBytes !== undefined) {
    // An event's line is at most 4/3 of its budget charge (base64 plus < EVENT_OVERHEAD_BYTES of JSON).
    const cap = Math.floor((input.maxObjectBytes * 3) / 4);
    if (cap < MIN_OBJECT_SEGMENT_BYTES) {
      throw new RangeError(`maxObjectBytes ${input.maxObjectBytes} is too small for delta objects: need at least ${Math.ceil((MIN_OBJECT_SEGMENT_BYTES * 4) / 3)}`);
    }
    segmentBytes = Math.min(segmentBytes, cap);
  }
  return { parallelism, windowBytes, segmentBytes };
}

/** Least event bytes per object when objects are capped: one default-sized etcd revision. */
const MIN_OBJECT_SEGMENT_BYTES = 1536 * 1024 + 256 * 1024;
