/**
 * How an S3 upload uses the memory budget. Pure and free of the AWS SDK, so that spec validation and
 * budget planning do not load it (it costs tens of MiB and most of a CLI start-up).
 */
import { InvalidSpecError } from '../errors.js';

const MiB = 1024 * 1024;
/** S3's minimum size for every part but the last (lib-storage refuses smaller parts). */
export const MIN_PART_SIZE_BYTES = 5 * MiB;
/** 8 MiB parts keep request counts low (a 2 GiB snapshot is 256 parts) without hogging the budget. */
const DEFAULT_PART_SIZE_BYTES = 8 * MiB;
/** Parts in flight when the budget allows: S3 throughput scales with parallel connections. */
const DEFAULT_QUEUE_SIZE = 4;
/**
 * Bytes of the source stream held outside part accounting: the rest of a source chunk that straddles
 * a part boundary while the next part's reservation waits. Node streams hand out 16-64 KiB chunks.
 */
export const READ_SLACK_BYTES = 64 * 1024;

/**
 * How a streamed put uses memory. lib-storage's Upload holds, at its peak, `queueSize` parts (the
 * ones in flight plus the one being assembled) and two more part-sized buffers: its chunker joins the
 * chunks of the part being assembled with Buffer.concat (a copy) while the previous part's buffer is
 * still referenced by the leftover bytes it carries over. So one put needs
 * `(queueSize + 2) * partSize` (+ slack) of budget.
 */
export interface UploadPlan {
  partSizeBytes: number;
  queueSize: number;
  /** The most one streamed put reserves from the budget at once. */
  workingSetBytes: number;
}

export function uploadWorkingSetBytes(partSizeBytes: number, queueSize: number): number {
  return (queueSize + 2) * partSizeBytes + READ_SLACK_BYTES;
}

/** What one streamed put reserves before reading its body: three part buffers plus read slack. */
export function streamReservationBytes(partSizeBytes: number): number {
  return 3 * partSizeBytes + READ_SLACK_BYTES;
}

/** The smallest memory budget with which the S3 store can stream an upload: 5 MiB parts, one in flight. */
export const MIN_S3_BUDGET_BYTES = uploadWorkingSetBytes(MIN_PART_SIZE_BYTES, 1);

/**
 * Derives part size and parts in flight from the memory budget. One streamed put may take half the
 * budget (deltas need the rest), but at least MIN_S3_BUDGET_BYTES. Requested values are upper bounds:
 * parts in flight are kept while parts shrink towards 5 MiB, then parts in flight go down to one.
 * A budget below MIN_S3_BUDGET_BYTES cannot hold one 5 MiB part in flight plus lib-storage's copies,
 * so it is a spec error (the operator reports SpecValid=False), not a slow upload or an OOM.
 */
export function planUpload(
  budgetBytes: number | undefined,
  requested: { partSizeBytes?: number; queueSize?: number } = {},
): UploadPlan {
  const part = requested.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
  const queue = requested.queueSize ?? DEFAULT_QUEUE_SIZE;
  if (!Number.isSafeInteger(part) || part < MIN_PART_SIZE_BYTES) {
    throw new RangeError(`S3 part size must be at least ${formatBytes(MIN_PART_SIZE_BYTES)}, got ${part}`);
  }
  if (!Number.isSafeInteger(queue) || queue < 1) throw new RangeError(`S3 queue size must be >= 1, got ${queue}`);
  if (budgetBytes === undefined) {
    return { partSizeBytes: part, queueSize: queue, workingSetBytes: uploadWorkingSetBytes(part, queue) };
  }
  if (budgetBytes < MIN_S3_BUDGET_BYTES) {
    throw new InvalidSpecError([
      `memory budget ${formatBytes(budgetBytes)} is too small for S3 uploads: streaming needs at least ` +
        `${formatBytes(MIN_S3_BUDGET_BYTES)} (S3's minimum part of 5 MiB, one part in flight, and the ` +
        `copies lib-storage makes while assembling a part)`,
    ]);
  }
  const share = Math.max(MIN_S3_BUDGET_BYTES, Math.floor(budgetBytes / 2));
  for (let q = queue; q >= 1; q--) {
    const fit = Math.floor((share - READ_SLACK_BYTES) / (q + 2));
    // Whole MiB parts read better in logs and docs; 5 MiB itself is a whole MiB.
    const p = Math.min(part, Math.floor(fit / MiB) * MiB);
    if (p >= MIN_PART_SIZE_BYTES) return { partSizeBytes: p, queueSize: q, workingSetBytes: uploadWorkingSetBytes(p, q) };
  }
  // Unreachable: share >= MIN_S3_BUDGET_BYTES fits q = 1 with 5 MiB parts.
  throw new RangeError(`no S3 upload plan fits a budget of ${budgetBytes} bytes`);
}

export function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % (MiB / 4) === 0) return `${bytes / MiB} MiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(2)} MiB`;
  return `${bytes} bytes`;
}
