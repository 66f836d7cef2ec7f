import type { Etcd3 } from 'etcd3';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createEncryptStream, ENCRYPT_STREAM_BYTES } from '../crypto/encryption.js';
import { headRevision } from '../etcd/client.js';
import { openSnapshotStream } from '../etcd/snapshot-stream.js';
import { EtcdUnavailableError, errorMessage } from '../errors.js';
import { compressStreamBytes, createCompressStream, type CompressOptions } from '../archive/compression.js';
import { fullSnapshotKey, type Compression } from '../archive/naming.js';
import type { ObjectStore } from '../store/object-store.js';
import type { MemoryBudget, Reservation } from '../budget/memory-budget.js';
import type { ObjectRetention } from '../store/object-lock.js';

export interface FullSnapshotOptions {
  client: Etcd3;
  endpoints: string[];
  store: ObjectStore;
  compression: Compression;
  /** Level and blocks in flight; defaults in src/archive/compression.ts. */
  compressOptions?: CompressOptions;
  /** When set, the object is encrypted (AES-256-GCM segments, after compression) and named `.enc`. */
  encryptionKey?: Buffer;
  /** Aborts the snapshot (timeout, shutdown); nothing partial becomes visible. */
  signal?: AbortSignal;
  /** The compressing stream's blocks in flight and, when encrypting, the encrypting stream's buffers are reserved from it while the upload runs. */
  budget?: MemoryBudget;
  now?: () => Date;
}

export interface FullSnapshotResult {
  key: string;
  /** Head revision read just before the snapshot: it holds every revision up to this one. */
  revision: number;
  time: Date;
  /** Bytes stored (after compression). */
  sizeBytes: number;
  /** sha256 of the stored bytes (the ciphertext when encrypted). */
  sha256: string;
  /** S3 Object Lock retention the snapshot was written with. */
  retention?: ObjectRetention;
}

/**
 * Streams one full snapshot into the store: etcd -> (gzip|zstd) -> (encrypt) -> store, never holding the
 * whole db. Compression comes first: ciphertext does not compress.
 * The object is named after the head revision read just before the snapshot starts; etcd 3.4's
 * snapshot response carries no revision, and the snapshot holds at least that revision. Restore
 * reads the exact revision from the restored member.
 */
export async function takeFullSnapshot(options: FullSnapshotOptions): Promise<FullSnapshotResult> {
  const { client, endpoints, signal } = options;
  signal?.throwIfAborted();
  let revision: number;
  try {
    revision = await headRevision(client);
  } catch (err) {
    throw new EtcdUnavailableError(`cannot reach etcd at ${endpoints.join(',')}: ${errorMessage(err)}`, err);
  }
  const time = (options.now ?? (() => new Date()))();
  return uploadSnapshot(() => openSnapshotStream(client, endpoints), { ...options, revision, time });
}

export interface SnapshotUploadOptions extends Omit<FullSnapshotOptions, 'client' | 'endpoints' | 'now'> {
  /** The revision the snapshot holds (at least), for its name. */
  revision: number;
  /** Its time, for its name and metadata. */
  time: Date;
  /** More object metadata (e.g. `cluster-id`, what a compacted snapshot was built from). */
  metadata?: Record<string, string>;
}

/**
 * Stores a snapshot db as the full snapshot `full/<revision>-<time>...`: db -> (gzip|zstd) -> (encrypt)
 * -> store, never holding the whole db; the store records the sha256. `open` is called once the
 * stream buffers are reserved from the budget (etcd does not wait for our budget once it streams).
 */
export async function uploadSnapshot(open: () => Promise<Readable>, options: SnapshotUploadOptions): Promise<FullSnapshotResult> {
  const { store, compression, encryptionKey, signal, revision, time } = options;
  const key = fullSnapshotKey(revision, time, { compression, encrypted: encryptionKey !== undefined });
  // Reserved before the snapshot stream opens: etcd does not wait for our budget.
  const streamBytes = compressStreamBytes(compression, options.compressOptions) + (encryptionKey ? ENCRYPT_STREAM_BYTES : 0);
  const streamReservation: Reservation | undefined =
    streamBytes > 0 && options.budget ? await options.budget.reserve(streamBytes, signal) : undefined;
  let snapshot: Readable;
  try {
    snapshot = await open();
  } catch (err) {
    streamReservation?.release();
    throw err;
  }
  const stages: Transform[] = [];
  // Compressed in parallel blocks (src/archive/compression.ts): one core of deflate cannot keep pace with etcd.
  const compress = createCompressStream(compression, options.compressOptions);
  if (compress) stages.push(compress);
  const encrypt = encryptionKey && createEncryptStream(encryptionKey, { objectKey: key });
  if (encrypt) stages.push(encrypt);
  if (stages.length === 0) stages.push(new PassThrough());
  // One error path: whichever stage fails destroys the body the store reads (pipeline destroys them all).
  const body: Readable = stages.at(-1)!;
  pipeline([snapshot, ...stages]).catch(() => undefined);
  // The store may still be opening its file when etcd fails the stream: keep that error from being
  // an unhandled 'error' event; the store's pipeline reads it from the destroyed body.
  body.on('error', () => undefined);
  const onAbort = (): void => {
    snapshot.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const stored = await store.put(key, body, {
      signal,
      metadata: {
        ...options.metadata,
        revision: String(revision),
        // The exact time (the key holds whole seconds): status after a restart reads it back.
        time: time.toISOString(),
        compression,
        ...(encrypt ? { encryption: 'aes-256-gcm-segmented-v1', 'encryption-key-id': encrypt.keyId } : {}),
      },
    });
    return {
      key,
      revision,
      time,
      sizeBytes: stored.size,
      sha256: stored.sha256,
      ...(stored.retention ? { retention: stored.retention } : {}),
    };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    snapshot.destroy();
    streamReservation?.release();
  }
}
