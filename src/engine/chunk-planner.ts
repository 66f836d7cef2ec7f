/**
 * Pure planning for delta backups: which revision ranges to fetch next. How far the archive reaches
 * is src/archive/revision-ranges.ts; how the memory budget is split between parallel fetches is
 * src/budget/fetch-budget.ts. No I/O here; the poller does that.
 */
import { mergeRanges, type RevisionRange } from '../archive/revision-ranges.js';

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
