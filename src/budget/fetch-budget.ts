/**
 * How one cluster's memory budget is divided between parallel delta fetches: pure arithmetic that the
 * delta poller runs on and that spec validation (through budget-fit) asks, so the two never disagree.
 */

/** How the memory budget is divided among delta fetches. */
export interface FetchBudgetPlan {
  /** Fetches run at once (may be lower than requested when the budget is small). */
  parallelism: number;
  /** Reserved by each fetch for its lifetime: watch transport + upload encoder (+ store and encryption buffers). */
  windowBytes: number;
  /** Event bytes one fetch holds before it uploads what it has as a (smaller) delta object. */
  segmentBytes: number;
}

/**
 * The largest watch response etcd sends. With fragment=true a response gathers events while it stays
 * under etcd's --max-request-bytes (1.5 MiB by default) plus the 512 KiB its watch server allows for
 * gRPC overhead, or holds a single event (one write: at most --max-request-bytes). Measured on etcd
 * 3.4: 1 MB values arrive two to a 2,000,083-byte response.
 */
export const MAX_WATCH_RESPONSE_BYTES = 2 * 1024 * 1024;
/**
 * HTTP/2's default flow-control window, which watch clients keep (etcd/client.ts dedicatedWatchClient):
 * what etcd can send on a watch stream, and on its connection, before the fetch reads.
 */
export const WATCH_STREAM_WINDOW_BYTES = 65_535;
/**
 * What one fetch's watch transport may hold besides the events the fetch charged, measured with heap
 * snapshots (issue 17). The fetch reads one response at a time without read-ahead; while it works
 * through a response, that response and the slices grpc-js's decoder assembled it from (kept until
 * the next response starts) are alive; while it waits for the next, the slices and the assembled copy
 * are. Either way two responses, plus the stream window and the 64 KiB socket read buffers the slices
 * pin at a message's ends. On a connection of its own (dedicatedWatchClient) those buffers hold only
 * this stream's frames; on a shared connection they would pin other streams' data as well.
 */
export const WATCH_TRANSPORT_BYTES = 2 * MAX_WATCH_RESPONSE_BYTES + 512 * 1024;
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
  return parallelism * (WATCH_TRANSPORT_BYTES + UPLOAD_ENCODER_BYTES + storeBufferBytes + encryptionBytes + MIN_SEGMENT_BYTES);
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
  const windowBytes = WATCH_TRANSPORT_BYTES + UPLOAD_ENCODER_BYTES + storeBufferBytes + encryptionBytes;
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
