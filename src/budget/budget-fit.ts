import { MIN_S3_BUDGET_BYTES, planUpload, streamReservationBytes } from './s3-upload-plan.js';
import { ENCRYPT_STREAM_BYTES } from '../crypto/encryption.js';
import { planFetchBudget } from './fetch-budget.js';

const MiB = 2 ** 20;
/** Upper end of the search for a minimum budget; specs asking for more parallelism than this fits are rare. */
const SEARCH_LIMIT_BYTES = 64 * 1024 * MiB;

export type StoreKind = 'local' | 's3';

/** Bytes the store reserves from the budget per concurrent upload (S3 part buffers; nothing for local). */
export function storeBufferBytes(kind: StoreKind, budgetBytes: number): number {
  return kind === 's3' ? streamReservationBytes(planUpload(budgetBytes).partSizeBytes) : 0;
}

/**
 * How many delta fetches a budget runs at once (what the poller will do), or 0 when it runs none.
 * Encrypted deltas hold an encrypting stream per upload (ENCRYPT_STREAM_BYTES), as the poller plans.
 */
export function deltaParallelismFor(kind: StoreKind, budgetBytes: number, parallelism: number, encrypted = false): number {
  if (kind === 's3' && budgetBytes < MIN_S3_BUDGET_BYTES) return 0;
  try {
    return planFetchBudget({
      budgetBytes,
      parallelism,
      storeBufferBytes: storeBufferBytes(kind, budgetBytes),
      encryptionBytes: encrypted ? ENCRYPT_STREAM_BYTES : 0,
    }).parallelism;
  } catch {
    return 0;
  }
}

/**
 * The smallest budget, in whole MiB, that runs `parallelism` delta fetches with this store: the
 * minimum validation reports. Computed by asking the same planners the poller and store use, so the
 * two can never disagree.
 */
export function minimumDeltaBudget(kind: StoreKind, parallelism: number, encrypted = false): number {
  let low = MiB;
  let high = SEARCH_LIMIT_BYTES;
  if (deltaParallelismFor(kind, high, parallelism, encrypted) < parallelism) return high;
  // Fits are monotonic in the budget: binary search over whole MiB.
  while (high - low > MiB) {
    const mid = Math.floor((low + high) / 2 / MiB) * MiB;
    if (deltaParallelismFor(kind, mid, parallelism, encrypted) >= parallelism) high = mid;
    else low = mid;
  }
  return high;
}
