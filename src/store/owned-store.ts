import type { Readable } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import { classifyKeys } from '../archive/naming.js';
import { listBackupObjects, type GetResult, type ObjectInfo, type ObjectStore, type PutOptions, type PutResult } from './object-store.js';
import {
  CLUSTER_ID_METADATA_KEY,
  readStoreMarker,
  StoreOwnedByAnotherClusterError,
  writeStoreMarker,
  type StoreMarker,
} from './store-marker.js';

/** The etcd cluster a writer backs up, as one response header tells it (read together). */
export interface ClusterIdentity {
  clusterId: string;
  headRevision: number;
}

export interface OwnedStoreOptions {
  /** Reads the cluster ID and head revision of the etcd being backed up. */
  identify: () => Promise<ClusterIdentity>;
  /** Recorded in a new marker: `namespace/name` of the EtcdBackup, or the spec file for `run`. */
  owner: string;
  logger: Logger;
  now?: () => Date;
}

/**
 * A store that writes only into a store of its own cluster. Before the first write (and delete) it
 * reads the store marker: none yet, it writes one (an old store without a marker is adopted, if
 * etcd's head is not behind what the store holds); of another cluster, or the store holds revisions
 * past etcd's head (a restored or replaced cluster with the same ID), every write and delete fails
 * with StoreOwnedByAnotherClusterError until the spec points elsewhere. Each object written records
 * the cluster ID in its metadata. Reads pass through.
 */
export class OwnedStore implements ObjectStore {
  private confirmed: Promise<string> | undefined;

  constructor(
    private readonly inner: ObjectStore,
    private readonly options: OwnedStoreOptions,
  ) {}

  get streamReservationBytes(): number | undefined {
    return this.inner.streamReservationBytes;
  }

  get singleRequestMaxBytes(): number | undefined {
    return this.inner.singleRequestMaxBytes;
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<PutResult> {
    const clusterId = await this.claim();
    return this.inner.put(key, body, { ...options, metadata: { ...options.metadata, [CLUSTER_ID_METADATA_KEY]: clusterId } });
  }

  async delete(key: string): Promise<void> {
    await this.claim();
    return this.inner.delete(key);
  }

  get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    return this.inner.get(key, options);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inner.list(prefix);
  }

  describe(): string {
    return this.inner.describe();
  }

  cleanupIncomplete(olderThanMs?: number): Promise<unknown> {
    return this.inner.cleanupIncomplete?.(olderThanMs) ?? Promise.resolve();
  }

  close(): void {
    this.inner.close?.();
  }

  /** The cluster ID once the store is confirmed ours; a refusal is not remembered (the next write checks again). */
  claim(): Promise<string> {
    this.confirmed ??= this.check().catch((err: unknown) => {
      this.confirmed = undefined;
      throw err;
    });
    return this.confirmed;
  }

  private async check(): Promise<string> {
    const { logger } = this.options;
    const { clusterId, headRevision } = await this.options.identify();
    const marker = await readStoreMarker(this.inner);
    if (marker && marker.clusterId !== clusterId) {
      throw new StoreOwnedByAnotherClusterError(
        `${this.inner.describe()} holds the backups of etcd cluster ${marker.clusterId} (started by ${marker.owner || 'unknown'}), ` +
          `not of this etcd (cluster ${clusterId}); refusing to write: back up to a new store prefix`,
      );
    }
    const listing = classifyKeys((await listBackupObjects(this.inner)).map((o) => o.key));
    // A loop, not Math.max(...spread): a store with years of deltas has more objects than arguments fit.
    let stored = 0;
    for (const full of listing.fulls) stored = Math.max(stored, full.revision);
    for (const delta of listing.deltas) stored = Math.max(stored, delta.toRevision);
    if (stored > headRevision) {
      throw new StoreOwnedByAnotherClusterError(
        `${this.inner.describe()} holds revisions up to ${stored} but etcd (cluster ${clusterId}) is at revision ${headRevision}: ` +
          'its history is not the one in the store (restored or replaced?); refusing to write: back up to a new store prefix',
      );
    }
    if (!marker) {
      const created: StoreMarker = { format: 1, clusterId, owner: this.options.owner, created: (this.options.now?.() ?? new Date()).toISOString() };
      await writeStoreMarker(this.inner, created);
      const adopted = listing.fulls.length + listing.deltas.length;
      if (adopted > 0) logger.info('Adopted a store without a marker', { store: this.inner.describe(), clusterId, objects: adopted });
      else logger.info('Wrote the store marker', { store: this.inner.describe(), clusterId });
    } else if (marker.owner !== this.options.owner) {
      logger.warn('The store was started by another writer of the same cluster', { store: this.inner.describe(), startedBy: marker.owner });
    }
    return clusterId;
  }
}
