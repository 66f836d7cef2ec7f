/**
 * Offline compaction of the archive (`etcd-backup compact`): the newest full snapshot and the deltas
 * after it are restored into a temporary member (the restore path, on this machine, not the live
 * etcd), and the result is stored as a new full snapshot named by its exact revision. Later restores
 * start from it and replay only what was archived after it.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyKeys, type Compression } from '../archive/naming.js';
import type { MemoryBudget } from '../budget/memory-budget.js';
import type { Logger } from '../observability/logger.js';
import { restoreBackup, type RestoreOptions } from '../restore/restore.js';
import { restoreReach } from '../restore/restore-plan.js';
import type { ObjectStore } from '../store/object-store.js';
import { CLUSTER_ID_METADATA_KEY } from '../store/store-marker.js';
import { uploadSnapshot, type FullSnapshotResult } from './full-snapshot.js';

export interface CompactOptions
  extends Pick<RestoreOptions, 'encryptionKeys' | 'allowUnencrypted' | 'prefetchBytes' | 'pipelineDepth' | 'tools' | 'signal'> {
  store: ObjectStore;
  /** The upload's compressing and encrypting streams reserve their buffers from it (the worker's budget). */
  budget?: MemoryBudget;
  logger: Logger;
  /** Compression of the compacted snapshot; default: the newest full snapshot's. */
  compression?: Compression;
  /**
   * Seals the compacted snapshot (AES-256-GCM); default: the first of encryptionKeys. Without any
   * key the newest snapshot's chain must be plain, and so is the result.
   */
  encryptionKey?: Buffer;
}

export type CompactResult =
  | { compacted: false; why: string }
  | {
      compacted: true;
      /** The stored full snapshot. */
      snapshot: FullSnapshotResult;
      /** The full snapshot the chain started from, and the delta revisions folded into the new one. */
      from: string;
      revisionsFolded: number;
    };

/**
 * Compacts the newest chain (see the file comment). Nothing to compact (no full snapshot, or no
 * delta after the newest one) is an answer, not an error. The new snapshot's time is when the last
 * delta it holds was stored, so that `restore --to-time` picks it exactly when it would have reached
 * that revision through the deltas.
 */
export async function compactNewestChain(options: CompactOptions): Promise<CompactResult> {
  const { store, logger, signal } = options;
  const objects = await store.list('');
  const listing = classifyKeys(objects.map((o) => o.key));
  const reach = restoreReach(listing, new Map(objects.map((o) => [o.key, o.lastModified])));
  const newest = listing.fulls.at(-1);
  if (!reach || !newest) return { compacted: false, why: `no full snapshot in ${store.describe()}` };
  if (reach.replayRevisions === 0) {
    return { compacted: false, why: `the newest full snapshot ${newest.key} has no delta after it (revision ${reach.window.lastRevision})` };
  }
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-backup-compact-'));
  try {
    const file = join(workDir, 'compacted.db');
    const restored = await restoreBackup({
      store,
      logger,
      snapshotOut: file,
      // The contiguous end: deltas past a gap are not part of the chain a restore can use.
      toRevision: reach.window.lastRevision,
      encryptionKeys: options.encryptionKeys,
      allowUnencrypted: options.allowUnencrypted,
      prefetchBytes: options.prefetchBytes,
      pipelineDepth: options.pipelineDepth,
      tools: options.tools,
      signal,
    });
    if (restored.revisionsApplied === 0) {
      // The snapshot's name holds a lower bound of its revision; it already held the whole chain.
      return { compacted: false, why: `the newest full snapshot ${restored.snapshot.key} already holds revision ${restored.revision}` };
    }
    const snapshot = await uploadSnapshot(async () => createReadStream(file), {
      store,
      compression: options.compression ?? newest.compression,
      encryptionKey: options.encryptionKey ?? options.encryptionKeys?.[0],
      signal,
      budget: options.budget,
      revision: restored.revision,
      time: reach.window.lastTime,
      metadata: {
        'compacted-from': restored.snapshot.key,
        ...(restored.clusterId ? { [CLUSTER_ID_METADATA_KEY]: restored.clusterId } : {}),
      },
    });
    logger.info('Stored compacted full snapshot', {
      object: snapshot.key,
      revision: snapshot.revision,
      from: restored.snapshot.key,
      revisionsFolded: restored.revisionsApplied,
      sha256: snapshot.sha256,
    });
    return { compacted: true, snapshot, from: restored.snapshot.key, revisionsFolded: restored.revisionsApplied };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

