import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { cp, mkdtemp, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { freemem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Duplex } from 'node:stream';
import type { Etcd3 } from 'etcd3';
import { createDecryptStream, decryptReadable } from '../crypto/encryption.js';
import { MAX_EVENT_BYTES } from '../archive/delta-format.js';
import { MemoryBudget } from '../budget/memory-budget.js';
import { createEtcdClient, headRevision } from '../etcd/client.js';
import { openSnapshotStream } from '../etcd/snapshot-stream.js';
import {
  canBumpRevision,
  defaultEtcdBinaries,
  findRestoreTools,
  hasSnapshotCatchupEntries,
  hasUnsafeNoFsync,
  type EtcdBinaries,
  type RestoreTool,
} from '../etcd/etcd-tools.js';
import { anonRssBytes, ETCD_BINARY, peakRssBytes, startLocalEtcd, type LocalEtcd } from '../etcd/local-etcd.js';
import { DataDirNotEmptyError, errorMessage, OperatorError, RestoreError, UnencryptedObjectError, UsageError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { classifyKeys, type DeltaName, type FullSnapshotName } from '../archive/naming.js';
import { createDecompressStream } from '../archive/compression.js';
import type { ObjectStore } from '../store/object-store.js';
import { readStoreMarker, withClusterCheck } from '../store/store-marker.js';
import { replayDeltas } from './delta-replay.js';
import { LeaseKeeper } from './lease-keeper.js';
import { noLeaseChanges, type LeaseSummary } from './lease-restorer.js';
import {
  ETCD_DEFAULT_QUOTA_BYTES,
  replayDirBytes,
  replayDirPlacement,
  snapshotCandidates,
  temporaryQuotaBytes,
  TMPFS_DIR,
  type ReplaySizes,
  type RestoreTarget,
} from './restore-plan.js';

const run = promisify(execFile);

export interface RestoreOptions extends RestoreTarget {
  store: ObjectStore;
  /** Must not exist or be empty: a restore never overwrites data. Optional with snapshotOut. */
  dataDir?: string;
  /**
   * Also (or only) write the restored state as one snapshot db file that any etcd tool restores
   * (`etcdutl/etcdctl snapshot restore`); must not exist.
   */
  snapshotOut?: string;
  /**
   * Build the data dir of one member of a new cluster (etcd's --initial-cluster NAME=URL,...); must
   * name this member (`name`) with its peer URL (`peerUrl`). Default: a one-member cluster.
   */
  initialCluster?: string;
  /** etcd's --initial-cluster-token for the new cluster; default "etcd-backup-restore". */
  initialClusterToken?: string;
  /**
   * Raise the restored revision by this much and mark it compacted (etcdutl snapshot restore
   * --bump-revision N --mark-compacted, etcd 3.5.10+/3.6 tools): revisions never go back for the
   * clients of the restored cluster (Kubernetes' watch caches and informers; etcd issue #16028).
   * markCompacted must be set with it, as etcdutl requires.
   */
  bumpRevision?: number;
  markCompacted?: boolean;
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
   * Restart the temporary member after this many bytes of replayed keys and values (its in-memory raft
   * log goes with the restart); default REPLAY_RESTART_BYTES before etcd 3.6, never on 3.6+ (which
   * bounds that log itself with --snapshot-catchup-entries).
   */
  memberRestartBytes?: number;
  /**
   * Replay in a data dir on tmpfs (TMPFS_DIR) when the expected data fits there (replayDirPlacement),
   * then copy the result to --data-dir and fsync it. Default true; false (--no-tmpfs) replays on disk.
   */
  tmpfs?: boolean;
  /** Where tmpfs is; default TMPFS_DIR (/dev/shm). */
  tmpfsDir?: string;
  /** Run the temporary member with --unsafe-no-fsync where the binary has it (3.5+); default true. */
  unsafeNoFsync?: boolean;
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
  /** What the replay did with the source's leases. */
  leases: LeaseSummary;
  /**
   * The temporary member: its backend quota, its peak resident memory over all its runs (undefined
   * where unknown), how often it was restarted to drop its in-memory raft log, and whether its data
   * dir was on tmpfs.
   */
  temporaryMember: {
    quotaBytes: number;
    peakRssBytes: number | undefined;
    /** Peak anonymous memory (heap, raft log), without the mapped db pages that peakRssBytes counts. */
    peakAnonRssBytes: number | undefined;
    restarts: number;
    dataDirOnTmpfs: boolean;
  };
  /** Seconds spent replaying deltas (0 without any). */
  replaySeconds: number;
  /**
   * Size of the restored backend db: the member started on it needs a --quota-backend-bytes above it
   * (and at least the source's), or etcd raises its NOSPACE alarm and refuses writes.
   */
  dbSizeBytes: number;
}

async function dbSize(dataDir: string): Promise<number> {
  return (await stat(join(dataDir, 'member', 'snap', 'db'))).size;
}

/**
 * What the temporary member will hold for this snapshot and the deltas after it (for
 * temporaryQuotaBytes and replayDirPlacement): the snapshot's db is on disk by now, the deltas'
 * stored sizes are in the listing.
 */
async function replaySizes(snapshotFile: string, snapshot: FullSnapshotName, deltas: readonly DeltaName[], objects: readonly { key: string; size: number }[]): Promise<ReplaySizes> {
  const sizes = new Map(objects.map((o) => [o.key, o.size]));
  const after = deltas.filter((d) => d.toRevision > snapshot.revision);
  return {
    snapshotDbBytes: (await stat(snapshotFile)).size,
    deltaBytes: after.reduce((sum, d) => sum + (sizes.get(d.key) ?? 0), 0),
    deltasCompressed: after.some((d) => d.compression !== 'none'),
  };
}

/** Where the replay runs: tmpfs when asked for and the expected data fits (replayDirPlacement). */
async function chooseReplayOnTmpfs(options: RestoreOptions, sizes: ReplaySizes): Promise<boolean> {
  if (options.tmpfs === false) return false;
  const tmpfsFreeBytes = await statfs(options.tmpfsDir ?? TMPFS_DIR).then((s) => s.bavail * s.bsize, () => 0);
  const placement = replayDirPlacement({ expectedBytes: replayDirBytes(sizes), tmpfsFreeBytes, memAvailableBytes: freemem() });
  options.logger.info('Chose where the temporary member keeps its data', { placement, tmpfsFreeBytes, expectedBytes: replayDirBytes(sizes) });
  return placement === 'tmpfs';
}

/**
 * Rebuilds an etcd data dir from the store: the newest full snapshot at or before the target,
 * checked against its recorded sha256 before `etcdutl snapshot restore` (or 3.4's etcdctl) sees it.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const target = checkOutputs(options);
  if (target.dataDir) await ensureEmptyDir(target.dataDir);
  if (target.snapshotOut) await ensureAbsent(target.snapshotOut);
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
  if (options.bumpRevision !== undefined && !canBumpRevision(tools.restore)) {
    throw new UsageError(
      `--bump-revision needs etcdutl 3.5.10 or newer (etcd 3.5/3.6 tools; ETCDUTL_BIN); the restore tool found is ${tools.restore.name} ${tools.restore.version}`,
    );
  }
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-backup-restore-'));
  // On tmpfs: created when the data fits, removed whatever happens.
  let tmpfsRoot: string | undefined;
  const finalSnapshot = target.snapshotOut ?? join(workDir, 'final.db');
  try {
    for (const snapshot of candidates) {
      signal?.throwIfAborted();
      const snapshotFile = await downloadSnapshot(store, snapshot, workDir, options);
      signal?.throwIfAborted();
      const sizes = await replaySizes(snapshotFile, snapshot, deltas, objects);
      const onTmpfs = await chooseReplayOnTmpfs(options, sizes);
      if (onTmpfs) tmpfsRoot ??= await mkdtemp(join(options.tmpfsDir ?? TMPFS_DIR, 'etcd-backup-restore-'));
      // One member of a new cluster, or a snapshot file: replay in a work dir, snapshot the result and
      // restore that snapshot with the member's flags (etcd's own procedure for every member). On
      // tmpfs, the replayed data dir is copied to --data-dir afterwards.
      const dataDir = onTmpfs ? join(tmpfsRoot!, 'replay') : target.viaSnapshot ? join(workDir, 'replay') : target.dataDir!;
      // Always a one-member cluster: the temporary member must run alone.
      await restoreTool(tools.restore, snapshotFile, dataDir, { name: options.name, peerUrl: options.peerUrl }, signal, snapshot.key);
      signal?.throwIfAborted();
      const quotaBytes = temporaryQuotaBytes(sizes);
      const memberOptions = {
        dataDir,
        name: options.name ?? 'default',
        workDir,
        etcd: tools.etcd.binary,
        signal,
        logger: options.logger,
        quotaBytes,
        noFsync: options.unsafeNoFsync !== false && hasUnsafeNoFsync(tools.etcd.version),
        snapshotCatchupEntries: hasSnapshotCatchupEntries(tools.etcd.version),
      };
      // etcd 3.6 bounds its in-memory raft log by itself (--snapshot-catchup-entries); a restart would
      // only make it read the whole db again (every page mapped: resident memory the size of the db).
      const restartEveryBytes = options.memberRestartBytes ?? (memberOptions.snapshotCatchupEntries ? undefined : REPLAY_RESTART_BYTES);
      const result = await withTemporaryMember(memberOptions, async (member): Promise<Omit<RestoreResult, 'dbSizeBytes'> | undefined> => {
        const { client, leases } = member;
        const snapshotRevision = await headRevision(client);
        if (options.toRevision !== undefined && snapshotRevision > options.toRevision) return undefined;
        options.logger.info('Restored full snapshot', { object: snapshot.key, revision: snapshotRevision, dataDir });
        // Latest = the last archived revision. A gap before it is an error naming the missing
        // revisions (replayDeltas), never a silent stop short of what the store holds.
        const revision = options.toRevision ?? lastArchivedRevision(deltas, snapshotRevision);
        const temporaryMember = async (): Promise<RestoreResult['temporaryMember']> => ({
          quotaBytes,
          peakRssBytes: await member.peakRssBytes(),
          peakAnonRssBytes: await member.peakAnonRssBytes(),
          restarts: member.restarts,
          dataDirOnTmpfs: onTmpfs,
        });
        if (revision === snapshotRevision) {
          if (target.viaSnapshot) await saveSnapshot(client, finalSnapshot, signal);
          return { snapshot, snapshotRevision, revision: snapshotRevision, revisionsApplied: 0, leases: noLeaseChanges(), temporaryMember: await temporaryMember(), replaySeconds: 0, clusterId: marker?.clusterId };
        }
        const replayStarted = performance.now();
        const replayed = await replayDeltas({
          client,
          leases,
          store,
          deltas,
          afterRevision: snapshotRevision,
          toRevision: revision,
          logger: options.logger,
          tempDir: workDir,
          objectSizes: new Map(objects.map((o) => [o.key, o.size])),
          prefetchBudget: options.prefetchBytes ? new MemoryBudget(options.prefetchBytes) : undefined,
          pipelineDepth: options.pipelineDepth,
          decrypt: options.encryptionKeys?.length
            ? (body, key) => decryptReadable(body, options.encryptionKeys!, key)
            : undefined,
          requireEncrypted: requiresEncryption(options),
          memberRestart: restartEveryBytes === undefined ? undefined : { everyBytes: restartEveryBytes, restart: member.restart },
        });
        const replaySeconds = (performance.now() - replayStarted) / 1000;
        if (target.viaSnapshot) await saveSnapshot(client, finalSnapshot, signal);
        return {
          snapshot,
          snapshotRevision,
          revision: replayed.revision,
          revisionsApplied: replayed.revisionsApplied,
          leases: replayed.leases,
          temporaryMember: await temporaryMember(),
          replaySeconds,
          clusterId: marker?.clusterId,
        };
      });
      signal?.throwIfAborted();
      if (result) {
        if (onTmpfs && !target.viaSnapshot) await copyDataDir(dataDir, target.dataDir!, signal);
        if (target.viaSnapshot && target.dataDir) {
          await restoreTool(tools.restore, finalSnapshot, target.dataDir, options, signal, 'the restored state', bumpFlags(options));
        }
        const dbSizeBytes = target.dataDir ? await dbSize(target.dataDir) : (await stat(finalSnapshot)).size;
        return { ...result, dbSizeBytes };
      }
      // The name's revision was a lower bound; this snapshot is past the target. Try an older one.
      options.logger.info('Snapshot holds revisions past the target; trying an older one', {
        object: snapshot.key,
        target: options.toRevision,
      });
      await rm(dataDir, { recursive: true, force: true });
    }
    throw new RestoreError(`no full snapshot at or before revision ${options.toRevision} in ${options.store.describe()}`);
  } catch (err) {
    // Never leave a half-restored data dir or snapshot behind: the user asked for new ones.
    if (target.dataDir) await rm(target.dataDir, { recursive: true, force: true });
    if (target.snapshotOut) await rm(target.snapshotOut, { force: true });
    throw err;
  } finally {
    await rm(workDir, { recursive: true, force: true });
    if (tmpfsRoot) await rm(tmpfsRoot, { recursive: true, force: true });
  }
}

/**
 * Copies the data dir replayed on tmpfs to its place on disk (another filesystem: no rename) and
 * fsyncs every file and directory there, the parent included, before restore reports success.
 */
async function copyDataDir(from: string, to: string, signal: AbortSignal | undefined): Promise<void> {
  try {
    await cp(from, to, { recursive: true, errorOnExist: true, force: false });
    signal?.throwIfAborted();
    await fsyncTree(to);
    await fsyncPath(dirname(to));
  } catch (err) {
    signal?.throwIfAborted();
    throw new RestoreError(`cannot copy the restored data dir from ${from} to ${to}: ${errorMessage(err)}`, err);
  }
}

/** Keys were given and plaintext was not allowed: every object read must be encrypted. */
function requiresEncryption(options: RestoreOptions): boolean {
  return (options.encryptionKeys?.length ?? 0) > 0 && options.allowUnencrypted !== true;
}

const SNAPSHOT_FILE = 'snapshot.db';

/**
 * Downloads, decrypts, decompresses and checks one snapshot into the work dir (for etcdutl/etcdctl
 * to build the data dir from); returns the file.
 */
async function downloadSnapshot(store: ObjectStore, snapshot: FullSnapshotName, workDir: string, options: RestoreOptions): Promise<string> {
  const keys = options.encryptionKeys ?? [];
  if (snapshot.encrypted && keys.length === 0) {
    throw new UsageError(`full snapshot ${snapshot.key} is encrypted: an encryption key is needed to restore it (--encryption-key-file)`);
  }
  if (!snapshot.encrypted && requiresEncryption(options)) throw new UnencryptedObjectError([snapshot.key]);
  const file = join(workDir, SNAPSHOT_FILE);
  const { signal } = options;
  const object = await store.get(snapshot.key, { signal });
  const out = createWriteStream(file, { mode: 0o600 });
  try {
    // The store stream fails at its end on a sha256 mismatch, and decryption on any segment that does
    // not authenticate (or a missing end), before the restore tool reads the file.
    const stages: Duplex[] = [];
    if (snapshot.encrypted) stages.push(createDecryptStream(keys, snapshot.key));
    const decompress = createDecompressStream(snapshot.compression);
    if (decompress) stages.push(decompress);
    await pipeline([object.body, ...stages, out], { signal });
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof OperatorError) throw err;
    throw new RestoreError(`cannot read ${snapshot.key}: ${errorMessage(err)}`, err);
  }
  return file;
}

/**
 * `etcdutl (or 3.4's etcdctl) snapshot restore FILE` into `dataDir` as the member `options` names
 * (etcd's --name, --initial-cluster, --initial-cluster-token, --initial-advertise-peer-urls).
 */
type MemberFlags = Pick<RestoreOptions, 'name' | 'peerUrl' | 'initialCluster' | 'initialClusterToken'>;

async function restoreTool(
  tool: RestoreTool,
  file: string,
  dataDir: string,
  options: MemberFlags,
  signal: AbortSignal | undefined,
  what: string,
  extraArgs: string[] = [],
): Promise<void> {
  const name = options.name ?? 'default';
  const peerUrl = options.peerUrl ?? 'http://localhost:2380';
  try {
    await run(
      tool.binary,
      [
        'snapshot', 'restore', file,
        '--data-dir', dataDir,
        '--name', name,
        '--initial-cluster', options.initialCluster ?? `${name}=${peerUrl}`,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster-token', options.initialClusterToken ?? 'etcd-backup-restore',
        ...extraArgs,
      ],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30 * 60_000, ...(signal ? { signal } : {}) },
    );
  } catch (err) {
    signal?.throwIfAborted();
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n').at(-1);
    throw new RestoreError(`${tool.name} ${tool.version} snapshot restore of ${what} failed: ${stderr || errorMessage(err)}`, err);
  }
}

/** Saves the member's state as a snapshot file (with etcd's trailing sha256), whole or not at all. */
async function saveSnapshot(client: Etcd3, file: string, signal: AbortSignal | undefined): Promise<void> {
  const part = `${file}.part`;
  try {
    await pipeline(await openSnapshotStream(client, ['the temporary member']), createWriteStream(part, { mode: 0o600 }), signal ? { signal } : {});
    await rename(part, file);
  } catch (err) {
    await rm(part, { force: true });
    signal?.throwIfAborted();
    if (err instanceof OperatorError) throw err;
    throw new RestoreError(`cannot write snapshot ${file}: ${errorMessage(err)}`, err);
  }
}

function bumpFlags(options: RestoreOptions): string[] {
  return options.bumpRevision === undefined ? [] : ['--bump-revision', String(options.bumpRevision), '--mark-compacted'];
}

interface Outputs {
  dataDir?: string;
  snapshotOut?: string;
  /** Replay elsewhere, then build the outputs from a snapshot of the result. */
  viaSnapshot: boolean;
}

/** Checks the output flags (pure but for path resolution). */
function checkOutputs(options: RestoreOptions): Outputs {
  if (!options.dataDir && !options.snapshotOut) throw new UsageError('give --data-dir, --snapshot-out or both');
  if (options.bumpRevision !== undefined || options.markCompacted) {
    if (options.bumpRevision === undefined || !options.markCompacted) {
      throw new UsageError('give --bump-revision N and --mark-compacted together (etcdutl requires both)');
    }
    if (!Number.isSafeInteger(options.bumpRevision) || options.bumpRevision < 1) {
      throw new UsageError(`--bump-revision must be a positive integer, got ${options.bumpRevision}`);
    }
    if (!options.dataDir) throw new UsageError('--bump-revision applies to --data-dir (bump a --snapshot-out file when you restore it)');
  }
  if (options.initialCluster !== undefined) {
    if (!options.dataDir) throw new UsageError('--initial-cluster builds a member data dir: give --data-dir too');
    const name = options.name ?? 'default';
    const peerUrl = options.peerUrl ?? 'http://localhost:2380';
    const members = options.initialCluster.split(',').map((entry) => entry.trim());
    if (!members.every((entry) => /^[^=]+=\S+$/.test(entry))) {
      throw new UsageError(`--initial-cluster must be NAME=URL,NAME=URL,...; got ${JSON.stringify(options.initialCluster)}`);
    }
    if (!members.includes(`${name}=${peerUrl}`)) {
      throw new UsageError(`--initial-cluster must list this member as ${name}=${peerUrl} (--name, --initial-advertise-peer-urls)`);
    }
  }
  return {
    dataDir: options.dataDir ? resolve(options.dataDir) : undefined,
    snapshotOut: options.snapshotOut ? resolve(options.snapshotOut) : undefined,
    viaSnapshot: options.snapshotOut !== undefined || options.initialCluster !== undefined || options.bumpRevision !== undefined,
  };
}

async function ensureAbsent(file: string): Promise<void> {
  const exists = await stat(file).then(() => true, () => false);
  if (exists) throw new UsageError(`${file} exists; refusing to overwrite it`);
  await stat(dirname(file)).catch(() => {
    throw new RestoreError(`cannot write ${file}: parent directory does not exist`);
  });
}

/**
 * A temporary member on the restored data dir, on free 127.0.0.1 ports (or the given ones, to restart
 * it on the same address). Replay sends each source
 * revision as one txn, so the member must accept txns as large as any the source accepted: many ops
 * (a delete-range or lease revocation touches many keys) and the source's request size. Its backend
 * quota fits the data it will hold (temporaryQuotaBytes; default etcd's 2 GiB), and a small
 * --snapshot-count makes it compact its in-memory raft log often: etcd keeps the entries since its
 * last snapshot plus 5,000 for catch-up in memory, 105,000 by default in 3.4 (the replayed values).
 * 3.6 also takes --snapshot-catchup-entries; before 3.6 the replay restarts the member instead
 * (REPLAY_RESTART_BYTES).
 */
export async function startMember(dataDir: string, name: string, workDir: string, settings: MemberSettings = {}): Promise<LocalEtcd> {
  return startLocalEtcd({
    dataDir,
    name,
    binary: settings.etcd ?? ETCD_BINARY,
    logFile: join(workDir, `etcd-${Date.now()}.log`),
    ...(settings.ports ? { ports: settings.ports } : {}),
    extraArgs: [
      '--max-txn-ops', String(REPLAY_MAX_TXN_OPS),
      '--max-request-bytes', String(REPLAY_MAX_REQUEST_BYTES),
      '--quota-backend-bytes', String(settings.quotaBytes ?? ETCD_DEFAULT_QUOTA_BYTES),
      '--snapshot-count', String(REPLAY_SNAPSHOT_COUNT),
      ...(settings.snapshotCatchupEntries ? ['--snapshot-catchup-entries', String(REPLAY_SNAPSHOT_CATCHUP_ENTRIES)] : []),
      // The member's data is rebuilt from the backup if anything fails; restore fsyncs the data dir
      // once the member has stopped (fsyncTree) instead of at every revision.
      ...(settings.noFsync ? ['--unsafe-no-fsync'] : []),
    ],
  });
}

/** How startMember runs the temporary member (all optional). */
export interface MemberSettings {
  /** The etcd program; default ETCD_BINARY. */
  etcd?: string;
  /** Backend quota (temporaryQuotaBytes); default etcd's. */
  quotaBytes?: number;
  /** --unsafe-no-fsync (etcd 3.5+). */
  noFsync?: boolean;
  /** --snapshot-catchup-entries REPLAY_SNAPSHOT_CATCHUP_ENTRIES (etcd 3.6+). */
  snapshotCatchupEntries?: boolean;
  /** Listen on these ports (a restart on the same address); free ports otherwise. */
  ports?: LocalEtcd['ports'];
}

/** etcd's own ceilings are far above any real cluster's settings; these cover generous sources. */
const REPLAY_MAX_TXN_OPS = 1_000_000;
/** Also the largest event a delta line may hold (the decoder's line limit follows from it). */
const REPLAY_MAX_REQUEST_BYTES = MAX_EVENT_BYTES;
/**
 * Raft entries applied between the temporary member's raft snapshots (etcd's default: 100,000 in
 * 3.4/3.5, 10,000 in 3.6). A restart reloads the entries since the last one from the WAL into memory,
 * so this many revisions of the largest values is what a restart cannot drop.
 */
export const REPLAY_SNAPSHOT_COUNT = 100;
/** Raft entries kept in memory after each raft snapshot (etcd 3.6+; its default: 5,000). */
export const REPLAY_SNAPSHOT_CATCHUP_ENTRIES = 100;
/**
 * Replayed bytes (keys and values) after which the temporary member restarts, dropping the raft
 * entries it keeps in memory (etcd 3.4/3.5 keep snapshot-count + 5,000 of them, whatever their size).
 */
export const REPLAY_RESTART_BYTES = 128 * 1024 * 1024;
const ANON_RSS_SAMPLE_MS = 250;

/** Where and how a temporary member runs. */
export interface TemporaryMemberOptions {
  dataDir: string;
  name: string;
  workDir: string;
  /** The etcd program; default ETCD_BINARY. */
  etcd?: string;
  logger: Logger;
  /** Kills the member at once; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Backend quota (temporaryQuotaBytes); default etcd's. */
  quotaBytes?: number;
  /** Run with --unsafe-no-fsync (etcd 3.5+) and fsync the data dir once the member stopped. */
  noFsync?: boolean;
  /** Run with --snapshot-catchup-entries (etcd 3.6+). */
  snapshotCatchupEntries?: boolean;
}

/** The running temporary member, for `use`. */
export interface TemporaryMember {
  client: Etcd3;
  /** Kept alive until the member stops. */
  leases: LeaseKeeper;
  /**
   * The member's peak resident memory so far, over all its runs (Linux /proc VmHWM), undefined where
   * unknown. It counts the pages of the bbolt db etcd maps: etcd reads all of them when it starts.
   */
  peakRssBytes(): Promise<number | undefined>;
  /** The member's peak anonymous memory (RssAnon, sampled every ANON_RSS_SAMPLE_MS and at each restart). */
  peakAnonRssBytes(): Promise<number | undefined>;
  /**
   * Stops the member and starts it again on the same data dir and address (the client reconnects by
   * itself): etcd drops the raft entries it held in memory. Call with no request in flight.
   */
  restart(): Promise<void>;
  /** Times restart() ran. */
  readonly restarts: number;
}

/**
 * Starts a temporary member on `dataDir`, runs `use` with a client to it and stops it. `signal`
 * kills the member at once; the call then rejects with the signal's reason (killing the member
 * fails whatever was talking to it: the cancellation is the cause).
 */
export async function withTemporaryMember<T>(options: TemporaryMemberOptions, use: (member: TemporaryMember) => Promise<T>): Promise<T> {
  const { signal } = options;
  const start = async (ports?: LocalEtcd['ports']): Promise<LocalEtcd> => {
    const started = await startMember(options.dataDir, options.name, options.workDir, {
      etcd: options.etcd,
      quotaBytes: options.quotaBytes,
      noFsync: options.noFsync,
      snapshotCatchupEntries: options.snapshotCatchupEntries,
      ports,
    });
    if (signal?.aborted) await started.stop();
    return started;
  };
  let member = await start();
  let earlierPeak: number | undefined;
  const peak = async (): Promise<number | undefined> => {
    const now = await peakRssBytes(member.process.pid);
    return now === undefined ? earlierPeak : Math.max(now, earlierPeak ?? 0);
  };
  // The kernel keeps no peak of anonymous memory: sample it (cheap, one /proc read).
  let peakAnon: number | undefined;
  const sampleAnon = async (): Promise<number | undefined> => {
    const now = await anonRssBytes(member.process.pid);
    if (now !== undefined) peakAnon = Math.max(now, peakAnon ?? 0);
    return peakAnon;
  };
  const sampler = setInterval(() => void sampleAnon(), ANON_RSS_SAMPLE_MS);
  sampler.unref();
  const kill = (): void => void member.stop().catch(() => undefined);
  if (signal?.aborted) kill();
  else signal?.addEventListener('abort', kill, { once: true });
  let result: T;
  try {
    result = await withClient(member, async (client) => {
      // For as long as the member runs, none of its leases may expire: that would delete keys and
      // make a revision of its own (LeaseKeeper). Each was refreshed at most a third of its TTL ago
      // when the member is stopped.
      const leases = await LeaseKeeper.start(client, options.logger);
      let restarts = 0;
      const handle: TemporaryMember = {
        client,
        leases,
        peakRssBytes: peak,
        peakAnonRssBytes: sampleAnon,
        get restarts() {
          return restarts;
        },
        restart: async () => {
          await leases.suspend();
          earlierPeak = await peak();
          await sampleAnon();
          await member.stop();
          signal?.throwIfAborted();
          member = await start(member.ports);
          signal?.throwIfAborted();
          restarts += 1;
          options.logger.debug('Restarted the temporary member', { restarts });
          leases.resume();
        },
      };
      try {
        return await use(handle);
      } finally {
        await leases.stop();
      }
    });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  } finally {
    clearInterval(sampler);
    signal?.removeEventListener('abort', kill);
    await member.stop();
  }
  if (options.noFsync) await fsyncTree(options.dataDir);
  return result;
}

/** fsyncs every file and directory under `dir`: what etcd skipped with --unsafe-no-fsync. */
async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncTree(path);
    else if (entry.isFile()) await fsyncPath(path);
  }
  await fsyncPath(dir);
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
