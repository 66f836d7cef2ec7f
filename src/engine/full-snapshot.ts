import type { Etcd3 } from 'etcd3';
import { createGzip } from 'node:zlib';
import { PassThrough, type Readable } from 'node:stream';
import { headRevision } from '../etcd/client.js';
import { openSnapshotStream } from '../etcd/snapshot-stream.js';
import { EtcdUnavailableError, errorMessage } from '../errors.js';
import { fullSnapshotKey, type Compression } from '../store/naming.js';
import type { ObjectStore } from '../store/object-store.js';

export interface FullSnapshotOptions {
  client: Etcd3;
  endpoints: string[];
  store: ObjectStore;
  compression: Compression;
  /** Aborts the snapshot (timeout, shutdown); nothing partial becomes visible. */
  signal?: AbortSignal;
  now?: () => Date;
}

export interface FullSnapshotResult {
  key: string;
  /** Head revision read just before the snapshot: it holds every revision up to this one. */
  revision: number;
  time: Date;
  /** Bytes stored (after compression). */
  sizeBytes: number;
  /** sha256 of the stored bytes. */
  sha256: string;
}

/**
 * Streams one full snapshot into the store: etcd -> (gzip) -> store, never holding the whole db.
 * The object is named after the head revision read just before the snapshot starts; etcd 3.4's
 * snapshot response carries no revision, and the snapshot holds at least that revision. Restore
 * reads the exact revision from the restored member.
 */
export async function takeFullSnapshot(options: FullSnapshotOptions): Promise<FullSnapshotResult> {
  const { client, endpoints, store, compression, signal } = options;
  signal?.throwIfAborted();
  let revision: number;
  try {
    revision = await headRevision(client);
  } catch (err) {
    throw new EtcdUnavailableError(`cannot reach etcd at ${endpoints.join(',')}: ${errorMessage(err)}`, err);
  }
  const time = (options.now ?? (() => new Date()))();
  const key = fullSnapshotKey(revision, time, { compression, encrypted: false });
  const snapshot = await openSnapshotStream(client, endpoints);
  // A PassThrough keeps one error path: whichever stage fails destroys the body the store reads.
  const body: Readable =
    compression === 'gzip' ? snapshot.pipe(createGzip({ level: 6 })) : snapshot.pipe(new PassThrough());
  snapshot.on('error', (err) => body.destroy(err));
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
      metadata: { revision: String(revision), compression },
    });
    return { key, revision, time, sizeBytes: stored.size, sha256: stored.sha256 };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    snapshot.destroy();
  }
}
