import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Etcd3 } from 'etcd3';
import { createDecryptStream, decryptReadable } from '../crypto/encryption.js';
import { MAX_EVENT_BYTES } from '../archive/delta-format.js';
import { MemoryBudget } from '../budget/memory-budget.js';
import { createEtcdClient, headRevision } from '../etcd/client.js';
import { defaultEtcdBinaries, findRestoreTools, type EtcdBinaries, type RestoreTool } from '../etcd/etcd-tools.js';
import { ETCD_BINARY, startLocalEtcd, type LocalEtcd } from '../etcd/local-etcd.js';
import { DataDirNotEmptyError, errorMessage, OperatorError, RestoreError, UnencryptedObjectError, UsageError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { classifyKeys, type DeltaName, type FullSnapshotName } from '../archive/naming.js';
import type { ObjectStore } from '../store/object-store.js';
import { readStoreMarker, withClusterCheck } from '../store/store-marker.js';
import { replayDeltas } from './delta-replay.js';
import { snapshotCandidates, type RestoreTarget } from './restore-plan.js';

const run = promisify(execFile);

export interface RestoreOptions extends RestoreTarget {
  store: ObjectStore;
  /** Must not exist or be empty: a restore never overwrites data. */
  dataDir: string;
  logger: Logger;
  /** Member name written into the restored data dir (etcd's --name). Default "default", as etcd's. */
  name?: string;
  /** Peer URL of the restored member (etcd's --initial-advertise-peer-urls). Default http://localhost:2380. */
  peerUrl?: string;
  /**
   * Keys for `.enc` objects; each object names the key that sealed it by key id, so give the old
   * and the new key after a rotation. Without keys an encrypted object is a UsageError.
   */
  encryptionKeys?: Buffer[];
  /**
   * With encryption keys given, an object that is not encrypted is refused (a UsageError naming it):
   * anyone who can write to the store could plant a plaintext snapshot with a matching sha256.
   * True accepts them (--allow-unencrypted), e.g. for a chain that began before encryption was enabled.
   */
  allowUnencrypted?: boolean;
  /** Bytes of delta objects downloaded ahead of the replay (--memory); default 64 MiB. */
  prefetchBytes?: number;
  /** Delta txns in flight (--txns-in-flight); default DEFAULT_PIPELINE_DEPTH. */
  pipelineDepth?: number;
  /**
   * The etcd programs to run; default defaultEtcdBinaries() (ETCD_BIN, ETCDCTL_BIN, ETCDUTL_BIN or PATH).
   * The snapshot is restored with etcdutl when it runs, else with etcdctl (3.4, 3.5).
   */
  tools?: EtcdBinaries;
  /**
   * Cancels the restore: the download and etcdutl/etcdctl stop, and the temporary member is killed, which
   * fails a replay in progress. Rejects with the signal's reason; nothing is left behind.
   */
  signal?: AbortSignal;
}

export interface RestoreResult {
  snapshot: FullSnapshotName;
  /** Delta revisions replayed on top of the snapshot. */
  revisionsApplied: number;
  /** The revision the snapshot itself holds (read from the restored member). */
  snapshotRevision: number;
  /** The restored head revision. */
  revision: number;
  /** The etcd cluster whose chain was restored (the store marker's); undefined for a store without one. */
  clusterId?: string;
}

/**
 * Rebuilds an etcd data dir from the store: the newest full snapshot at or before the target,
 * checked against its recorded sha256 before `etcdutl snapshot restore` (or 3.4's etcdctl) sees it.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const dataDir = resolve(options.dataDir);
  await ensureEmptyDir(dataDir);
  // The marker says whose chain the store holds; every object read must be of that cluster.
  const marker = await readStoreMarker(options.store, options.signal);
  const store = marker ? withClusterCheck(options.store, marker.clusterId) : options.store;
  if (marker) options.logger.info('Restoring the chain of etcd cluster', { clusterId: marker.clusterId, startedBy: marker.owner });
  else options.logger.warn('The store has no marker: which cluster its objects come from is not checked', { store: options.store.describe() });
  const objects = await options.store.list('');
  const listing = classifyKeys(objects.map((o) => o.key));
  const candidates = snapshotCandidates(listing, options);
  if (candidates.length === 0) {
    const what = options.toRevision !== undefined ? ` at or before revision ${options.toRevision}` : options.toTime ? ` at or before ${options.toTime.toISOString()}` : '';
    throw new RestoreError(`no full snapshot${what} in ${options.store.describe()}`);
  }
  // For --to-time, only deltas stored by then count (etcd keeps no time per revision).
  const storedAt = new Map(objects.map((o) => [o.key, o.lastModified.getTime()]));
  const deltas = options.toTime
    ? listing.deltas.filter((d) => (storedAt.get(d.key) ?? Infinity) <= options.toTime!.getTime())
    : listing.deltas;
  const { signal } = options;
  const tools = await findRestoreTools(options.tools ?? defaultEtcdBinaries(), signal);
  options.logger.info('Chose the etcd tools for the restore', {
    restoreTool: tools.restore.name,
    restoreToolVersion: tools.restore.version,
    restoreToolPath: tools.restore.binary,
    etcd: tools.etcd.binary,
    etcdVersion: tools.etcd.version ?? 'unknown',
  });
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-backup-restore-'));
  try {
    for (const snapshot of candidates) {
      signal?.throwIfAborted();
      await restoreSnapshotInto(store, snapshot, dataDir, workDir, tools.restore, options);
      signal?.throwIfAborted();
      const member = { dataDir, name: options.name ?? 'default', workDir, etcd: tools.etcd.binary };
      const result = await withTemporaryMember(member, signal, async (client) => {
        const snapshotRevision = await headRevision(client);
        if (options.toRevision !== undefined && snapshotRevision > options.toRevision) return undefined;
        options.logger.info('Restored full snapshot', { object: snapshot.key, revision: snapshotRevision, dataDir });
        // Latest = the last archived revision. A gap before it is an error naming the missing
        // revisions (replayDeltas), never a silent stop short of what the store holds.
        const target = options.toRevision ?? lastArchivedRevision(deltas, snapshotRevision);
        if (target === snapshotRevision) return { snapshot, snapshotRevision, revision: snapshotRevision, revisionsApplied: 0, clusterId: marker?.clusterId };
        const replayed = await replayDeltas({
          client,
          store,
          deltas,
          afterRevision: snapshotRevision,
          toRevision: target,
          logger: options.logger,
          tempDir: workDir,
          objectSizes: new Map(objects.map((o) => [o.key, o.size])),
          prefetchBudget: options.prefetchBytes ? new MemoryBudget(options.prefetchBytes) : undefined,
          pipelineDepth: options.pipelineDepth,
          decrypt: options.encryptionKeys?.length
            ? (body, key) => decryptReadable(body, options.encryptionKeys!, key)
            : undefined,
          requireEncrypted: requiresEncryption(options),
        });
        return { snapshot, snapshotRevision, revision: replayed.revision, revisionsApplied: replayed.revisionsApplied, clusterId: marker?.clusterId };
      });
      signal?.throwIfAborted();
      if (result) return result;
      // The name's revision was a lower bound; this snapshot is past the target. Try an older one.
      options.logger.info('Snapshot holds revisions past the target; trying an older one', {
        object: snapshot.key,
        target: options.toRevision,
      });
      await rm(dataDir, { recursive: true, force: true });
    }
    throw new RestoreError(`no full snapshot at or before revision ${options.toRevision} in ${options.store.describe()}`);
  } catch (err) {
    // Never leave a half-restored data dir behind: the user asked for an empty or missing one.
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Keys were given and plaintext was not allowed: every object read must be encrypted. */
function requiresEncryption(options: RestoreOptions): boolean {
  return (options.encryptionKeys?.length ?? 0) > 0 && options.allowUnencrypted !== true;
}

/** Downloads, decrypts, decompresses and checks one snapshot, then lets etcdutl/etcdctl build the data dir. */
async function restoreSnapshotInto(
  store: ObjectStore,
  snapshot: FullSnapshotName,
  dataDir: string,
  workDir: string,
  tool: RestoreTool,
  options: RestoreOptions,
): Promise<void> {
  const keys = options.encryptionKeys ?? [];
  if (snapshot.encrypted && keys.length === 0) {
    throw new UsageError(`full snapshot ${snapshot.key} is encrypted: an encryption key is needed to restore it (--encryption-key-file)`);
  }
  if (!snapshot.encrypted && requiresEncryption(options)) throw new UnencryptedObjectError([snapshot.key]);
  const file = join(workDir, 'snapshot.db');
  const { signal } = options;
  const object = await store.get(snapshot.key, { signal });
  const out = createWriteStream(file, { mode: 0o600 });
  try {
    // The store stream fails at its end on a sha256 mismatch, and decryption on any segment that does
    // not authenticate (or a missing end), before the restore tool reads the file.
    const stages: Transform[] = [];
    if (snapshot.encrypted) stages.push(createDecryptStream(keys, snapshot.key));
    if (snapshot.compression === 'gzip') stages.push(createGunzip());
    await pipeline([object.body, ...stages, out], { signal });
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof OperatorError) throw err;
    throw new RestoreError(`cannot read ${snapshot.key}: ${errorMessage(err)}`, err);
  }
  const name = options.name ?? 'default';
  const peerUrl = options.peerUrl ?? 'http://localhost:2380';
  try {
    await run(
      tool.binary,
      [
        'snapshot', 'restore', file,
        '--data-dir', dataDir,
        '--name', name,
        '--initial-cluster', `${name}=${peerUrl}`,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster-token', 'etcd-backup-restore',
      ],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30 * 60_000, ...(signal ? { signal } : {}) },
    );
  } catch (err) {
    signal?.throwIfAborted();
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n').at(-1);
    throw new RestoreError(`${tool.name} ${tool.version} snapshot restore of ${snapshot.key} failed: ${stderr || errorMessage(err)}`, err);
  }
}

/**
 * A temporary member on the restored data dir, on free 127.0.0.1 ports. Replay sends each source
 * revision as one txn, so the member must accept txns as large as any the source accepted: many ops
 * (a delete-range or lease revocation touches many keys) and the source's request size.
 */
export async function startMember(dataDir: string, name: string, workDir: string, etcd = ETCD_BINARY): Promise<LocalEtcd> {
  return startLocalEtcd({
    dataDir,
    name,
    binary: etcd,
    logFile: join(workDir, `etcd-${Date.now()}.log`),
    extraArgs: ['--max-txn-ops', String(REPLAY_MAX_TXN_OPS), '--max-request-bytes', String(REPLAY_MAX_REQUEST_BYTES)],
  });
}

/** etcd's own ceilings are far above any real cluster's settings; these cover generous sources. */
const REPLAY_MAX_TXN_OPS = 1_000_000;
/** Also the largest event a delta line may hold (the decoder's line limit follows from it). */
const REPLAY_MAX_REQUEST_BYTES = MAX_EVENT_BYTES;

/** Where and how a temporary member runs: its data dir, member name, log dir and etcd program. */
export interface TemporaryMember {
  dataDir: string;
  name: string;
  workDir: string;
  /** Default ETCD_BINARY. */
  etcd?: string;
}

/**
 * Starts a temporary member on `dataDir`, runs `use` with a client to it and stops it. `signal`
 * kills the member at once; the call then rejects with the signal's reason (killing the member
 * fails whatever was talking to it: the cancellation is the cause).
 */
export async function withTemporaryMember<T>(
  spec: TemporaryMember,
  signal: AbortSignal | undefined,
  use: (client: Etcd3) => Promise<T>,
): Promise<T> {
  const member = await startMember(spec.dataDir, spec.name, spec.workDir, spec.etcd);
  const kill = (): void => void member.stop().catch(() => undefined);
  if (signal?.aborted) kill();
  else signal?.addEventListener('abort', kill, { once: true });
  try {
    return await withClient(member, use);
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  } finally {
    signal?.removeEventListener('abort', kill);
    await member.stop();
  }
}

export async function withClient<T>(member: LocalEtcd, use: (client: Etcd3) => Promise<T>): Promise<T> {
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

async function ensureEmptyDir(dir: string): Promise<void> {
  try {
    const entries = await readdir(dir);
    if (entries.length > 0) throw new DataDirNotEmptyError(dir);
  } catch (err) {
    if (err instanceof DataDirNotEmptyError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'ENOTDIR') throw new DataDirNotEmptyError(dir);
    if (code !== 'ENOENT') throw new RestoreError(`cannot use data dir ${dir}: ${errorMessage(err)}`, err);
    // Missing is fine when its parent exists: the restore tool creates it.
    await stat(dirname(dir)).catch(() => {
      throw new RestoreError(`cannot use data dir ${dir}: parent directory does not exist`);
    });
  }
}

/** The newest revision any delta after the snapshot holds (the snapshot's own when none). */
function lastArchivedRevision(deltas: readonly DeltaName[], snapshotRevision: number): number {
  return deltas.reduce((end, delta) => Math.max(end, delta.toRevision), snapshotRevision);
}
