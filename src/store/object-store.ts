import type { Readable } from 'node:stream';
import { DELTA_DIR, FULL_DIR } from '../archive/naming.js';
import type { ObjectRetention } from './object-lock.js';

/** What a listing returns for one object. Keys are relative to the store's root (its prefix). */
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  /** Extra string metadata (S3 user metadata / local sidecar); keys lower-case [a-z0-9-]. */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

export interface PutResult {
  size: number;
  /** hex sha256 of the bytes stored. */
  sha256: string;
  /** S3 Object Lock: the retention the object was written with (explicit or the bucket default). */
  retention?: ObjectRetention;
}

export interface GetResult {
  /**
   * The object's bytes. The sha256 recorded at put time is checked as the stream is read: on a
   * mismatch the stream fails at its end with ChecksumMismatchError, so consumers must not act on the
   * content before the stream has ended without error.
   */
  body: Readable;
  size: number;
  metadata: Record<string, string>;
}

/**
 * Where backups live. Contract for every implementation:
 * - `put` streams (never buffers the whole body); the object becomes visible under `key` only when
 *   complete, and a failed or aborted put leaves nothing visible (and no orphaned parts).
 *   Putting an existing key replaces it.
 * - `get` throws ObjectNotFoundError for a missing key; the returned stream verifies the sha256.
 * - `list(prefix)` returns every object whose key starts with `prefix`, sorted by key, all pages.
 * - `delete` of a missing key succeeds (idempotent).
 * - Unreachable stores throw StoreUnreachableError with a one-line message naming the store.
 */
export interface ObjectStore {
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult>;
  get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult>;
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  /** Where this store is, for messages: `file:///abs/dir` or `s3://bucket/prefix (endpoint)`; never secrets. */
  describe(): string;
  /**
   * Bytes one streamed put reserves from the memory budget before reading its body (S3 part
   * buffers). Writers that hold budget themselves keep this much free per upload. 0 when absent.
   */
  readonly streamReservationBytes?: number;
  /** Largest body sent in one request; longer ones need a multipart upload (more budget). */
  readonly singleRequestMaxBytes?: number;
  /**
   * Removes leftovers of uploads a crash cut short (S3 multipart parts, temporary objects) started
   * more than `olderThanMs` ago (younger ones may belong to a live writer); idempotent.
   */
  cleanupIncomplete?(olderThanMs?: number): Promise<unknown>;
  /**
   * S3 Object Lock retention of an object (undefined: none, or missing). `delete` of an object still
   * under retention throws ObjectLockedError and deletes nothing.
   */
  retentionOf?(key: string): Promise<ObjectRetention | undefined>;
  /** Releases what the store holds open (an S3 client's sockets); the store is not used afterwards. */
  close?(): void;
}

/** Metadata key under which the sha256 of the stored bytes is recorded. */
export const SHA256_METADATA_KEY = 'sha256';

/** The objects under full/ and delta/: what resuming and store-derived status are computed from. */
export async function listBackupObjects(store: Pick<ObjectStore, 'list'>): Promise<ObjectInfo[]> {
  return [...(await store.list(FULL_DIR)), ...(await store.list(DELTA_DIR))];
}
