import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRPCOutOfRangeError, type Etcd3 } from 'etcd3';
import { createEtcdClient, type EtcdConnection } from '../etcd/client.js';
import { readAllKeys, recordLine, summarizeKeyspace, type KeyspaceSummary, type KeyValueRecord } from '../etcd/read-all.js';
import { EtcdUnavailableError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { EtcdBinaries } from '../etcd/etcd-tools.js';
import { ETCD_BINARY } from '../etcd/local-etcd.js';
import type { ObjectStore } from '../store/object-store.js';
import { restoreBackup, withTemporaryMember } from './restore.js';
import type { RestoreTarget } from './restore-plan.js';

export interface VerifyOptions extends RestoreTarget {
  store: ObjectStore;
  logger: Logger;
  /** Compare the restored keyspace with this live cluster at the same revision. */
  live?: EtcdConnection;
  /** Keys for `.enc` objects (see RestoreOptions.encryptionKeys). */
  encryptionKeys?: Buffer[];
  /** The etcd programs to run (see RestoreOptions.tools). */
  tools?: EtcdBinaries;
  /** Accept objects that are not encrypted although keys were given (see RestoreOptions.allowUnencrypted). */
  allowUnencrypted?: boolean;
  /**
   * What to do when the live cluster cannot be read at the restored revision (compacted, or
   * unreachable): 'fail' (default) throws; 'skip' leaves the comparison out and says why in
   * `liveSkipped` (the trial restore itself succeeded, which is what a scheduled check proves).
   */
  onLiveUnreadable?: 'fail' | 'skip';
  /** Cancels the verification: the trial etcd is killed and the temp dir removed; rejects with the reason. */
  signal?: AbortSignal;
}

export interface VerifyResult extends KeyspaceSummary {
  snapshot: string;
  /** Present when a live cluster was compared. */
  comparison?: { matches: boolean; liveKeyCount: number; differences: string[] };
  /** Why the live cluster was not compared (onLiveUnreadable 'skip'), e.g. the revision was compacted. */
  liveSkipped?: string;
}

/** The live cluster could not be read at the revision to compare; `compacted` says it was compaction. */
export class LiveReadError extends EtcdUnavailableError {
  constructor(
    message: string,
    readonly compacted: boolean,
    cause: unknown,
  ) {
    super(message, cause);
  }
}

/** How many differences a report lists; the count of the rest is given. */
const MAX_LISTED_DIFFERENCES = 20;

/**
 * Trial restore into a temp dir, start etcd on it (127.0.0.1, free ports), and report key count,
 * revision and a content hash; optionally compare every key with a live cluster at that revision.
 */
export async function verifyBackup(options: VerifyOptions): Promise<VerifyResult> {
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-backup-verify-'));
  try {
    const dataDir = join(workDir, 'data');
    const restored = await restoreBackup({ ...options, dataDir, logger: options.logger });
    options.signal?.throwIfAborted();
    const member = { dataDir, name: 'default', workDir, etcd: options.tools?.etcd ?? ETCD_BINARY };
    return await withTemporaryMember(member, options.signal, async (client) => {
      const summary = await summarizeKeyspace(client, restored.revision);
      const result: VerifyResult = { ...summary, snapshot: restored.snapshot.key };
      if (options.live) {
        try {
          result.comparison = await compareWithLive(client, options.live, restored.revision);
        } catch (err) {
          if (options.onLiveUnreadable !== 'skip' || !(err instanceof LiveReadError)) throw err;
          result.liveSkipped = err.message;
        }
      }
      return result;
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function compareWithLive(
  restored: Etcd3,
  live: EtcdConnection,
  revision: number,
): Promise<{ matches: boolean; liveKeyCount: number; differences: string[] }> {
  const liveClient = createEtcdClient(live);
  try {
    const differences: string[] = [];
    let extra = 0;
    const note = (text: string): void => {
      if (differences.length < MAX_LISTED_DIFFERENCES) differences.push(text);
      else extra++;
    };
    const ours = readAllKeys(restored, revision)[Symbol.asyncIterator]();
    const theirs = readAllKeys(liveClient, revision)[Symbol.asyncIterator]();
    let liveKeyCount = 0;
    // Merge-walk both sorted keyspaces so that neither is held in memory.
    let a = await ours.next();
    let b = await nextLive(theirs, live, revision);
    while (!a.done || !b.done) {
      const order = a.done ? 1 : b.done ? -1 : Buffer.compare(a.value.key, b.value.key);
      if (order < 0) {
        note(`key ${printable(a.value!.key)} is in the backup but not in the live cluster`);
        a = await ours.next();
      } else if (order > 0) {
        note(`key ${printable(b.value!.key)} is in the live cluster but not in the backup`);
        liveKeyCount++;
        b = await nextLive(theirs, live, revision);
      } else {
        if (recordLine(a.value!) !== recordLine(b.value!)) {
          note(`key ${printable(a.value!.key)} differs (${fieldDiff(a.value!, b.value!)})`);
        }
        liveKeyCount++;
        a = await ours.next();
        b = await nextLive(theirs, live, revision);
      }
    }
    if (extra > 0) differences.push(`... and ${extra} more differences`);
    return { matches: differences.length === 0, liveKeyCount, differences };
  } finally {
    liveClient.close();
  }
}

async function nextLive(
  iterator: AsyncIterator<KeyValueRecord>,
  live: EtcdConnection,
  revision: number,
): Promise<IteratorResult<KeyValueRecord>> {
  try {
    return await iterator.next();
  } catch (err) {
    const text = errorMessage(err);
    if (err instanceof GRPCOutOfRangeError) {
      // etcd answers OutOfRange both for compacted and for future revisions (another cluster?).
      if (/future revision/i.test(text)) {
        throw new LiveReadError(`live etcd at ${live.endpoints.join(',')} is behind revision ${revision} (${text}): is it the cluster that was backed up?`, false, err);
      }
      throw new LiveReadError(
        `live etcd at ${live.endpoints.join(',')} has compacted revision ${revision}; compare at a later revision`,
        true,
        err,
      );
    }
    throw new LiveReadError(`cannot read live etcd at ${live.endpoints.join(',')}: ${text}`, false, err);
  }
}

function fieldDiff(ours: KeyValueRecord, theirs: KeyValueRecord): string {
  const parts: string[] = [];
  if (!ours.value.equals(theirs.value)) parts.push('value');
  if (ours.createRevision !== theirs.createRevision) parts.push(`createRevision ${ours.createRevision} vs ${theirs.createRevision}`);
  if (ours.modRevision !== theirs.modRevision) parts.push(`modRevision ${ours.modRevision} vs ${theirs.modRevision}`);
  if (ours.version !== theirs.version) parts.push(`version ${ours.version} vs ${theirs.version}`);
  return parts.join(', ');
}

function printable(key: Buffer): string {
  const text = key.toString('utf8');
  return /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `0x${key.toString('hex')}`;
}
