import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { RestoreError } from '../errors.js';
import { ETCD_BINARY, ETCDCTL_BINARY } from './local-etcd.js';

const run = promisify(execFile);

export const ETCDUTL_BINARY = process.env.ETCDUTL_BIN ?? 'etcdutl';

/** The etcd programs restore and verify run: paths, or names looked up on PATH. */
export interface EtcdBinaries {
  etcd: string;
  etcdctl: string;
  /** Absent: restore with etcdctl (etcd 3.4 has no etcdutl). */
  etcdutl?: string;
}

/** ETCD_BIN, ETCDCTL_BIN and ETCDUTL_BIN, else the plain names (found on PATH). */
export function defaultEtcdBinaries(): EtcdBinaries {
  return { etcd: ETCD_BINARY, etcdctl: ETCDCTL_BINARY, etcdutl: ETCDUTL_BINARY };
}

/** What builds a data dir from a snapshot file: `<binary> snapshot restore FILE ...`. */
export interface RestoreTool {
  name: 'etcdutl' | 'etcdctl';
  binary: string;
  version: string;
}

/** A program's answer to its version command, or why it could not run. */
export type Probe = { version: string } | { error: string };

/**
 * The version in `etcdutl version`, `etcdctl version` ("etcdctl version: 3.4.23") or `etcd --version`
 * ("etcd Version: 3.6.17") output; undefined when there is none.
 */
export function parseToolVersion(output: string): string | undefined {
  return /^\S+ version:\s*v?(\d+\.\d+\.\d+\S*)/im.exec(output)?.[1];
}

/** etcd 3.6 removed `etcdctl snapshot restore` (and `status`); etcdutl has them since 3.5. */
export function etcdctlCanRestore(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < 3 || (major === 3 && minor < 6);
}

/** etcd has --unsafe-no-fsync from 3.5.0 (pure; an unknown version is taken as without). */
export function hasUnsafeNoFsync(etcdVersion: string | undefined): boolean {
  const [major = 0, minor = 0] = (etcdVersion ?? '').split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 5);
}

/**
 * etcd has --snapshot-catchup-entries (the raft entries kept in memory after each raft snapshot, 5,000
 * by default) from 3.6; 3.5 has no such flag (pure; an unknown version is taken as without).
 */
export function hasSnapshotCatchupEntries(etcdVersion: string | undefined): boolean {
  const [major = 0, minor = 0] = (etcdVersion ?? '').split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 6);
}

/**
 * `snapshot restore --bump-revision N --mark-compacted` exists in etcdutl from 3.5.10 (and 3.6);
 * 3.4's etcdctl never had it (pure).
 */
export function canBumpRevision(tool: RestoreTool): boolean {
  if (tool.name !== 'etcdutl') return false;
  const [major = 0, minor = 0, patch = 0] = tool.version.split(/[.-]/).map(Number);
  return major > 3 || (major === 3 && (minor > 5 || (minor === 5 && patch >= 10)));
}

/**
 * etcdutl when it runs (3.5+: the tool etcd maintains for offline snapshot work), else etcdctl when
 * it still has `snapshot restore` (3.4, 3.5). Throws a RestoreError saying what to install otherwise.
 */
export function chooseRestoreTool(binaries: Pick<EtcdBinaries, 'etcdctl' | 'etcdutl'>, etcdutl: Probe, etcdctl: Probe): RestoreTool {
  if ('version' in etcdutl && binaries.etcdutl) return { name: 'etcdutl', binary: binaries.etcdutl, version: etcdutl.version };
  if ('version' in etcdctl) {
    if (etcdctlCanRestore(etcdctl.version)) return { name: 'etcdctl', binary: binaries.etcdctl, version: etcdctl.version };
    const why = 'error' in etcdutl ? etcdutl.error : 'not given';
    throw new RestoreError(
      `etcdctl ${etcdctl.version} has no "snapshot restore" (etcd 3.6 moved it to etcdutl) and etcdutl cannot run (${why}): ` +
        'install etcdutl or set ETCDUTL_BIN',
    );
  }
  const why = 'error' in etcdutl ? etcdutl.error : 'not given';
  throw new RestoreError(
    `no etcd restore tool: etcdutl (${why}) and etcdctl (${etcdctl.error}) cannot run; ` +
      'install etcd 3.5+ etcdutl (or etcd 3.4 etcdctl), or set ETCDUTL_BIN / ETCDCTL_BIN',
  );
}

/** Runs `binary ...args` and reads its version; never throws. */
export async function probeVersion(binary: string, args: string[], signal?: AbortSignal): Promise<Probe> {
  try {
    const { stdout } = await run(binary, args, { timeout: 30_000, env: { ...process.env, ETCDCTL_API: '3' }, ...(signal ? { signal } : {}) });
    const version = parseToolVersion(stdout);
    return version ? { version } : { error: `${binary} ${args.join(' ')} printed no version` };
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { error: code === 'ENOENT' ? `${binary} not found` : `${binary}: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** The tools a restore runs, with their versions: the restore tool and the etcd of the temporary member. */
export interface RestoreTools {
  restore: RestoreTool;
  etcd: { binary: string; version?: string };
}

export async function findRestoreTools(binaries: EtcdBinaries, signal?: AbortSignal): Promise<RestoreTools> {
  const [etcdutl, etcdctl, etcd] = await Promise.all([
    binaries.etcdutl ? probeVersion(binaries.etcdutl, ['version'], signal) : ({ error: 'not given' } as const),
    probeVersion(binaries.etcdctl, ['version'], signal),
    probeVersion(binaries.etcd, ['--version'], signal),
  ]);
  signal?.throwIfAborted();
  // An etcd that cannot run fails the temporary member's start with its own clear error.
  return { restore: chooseRestoreTool(binaries, etcdutl, etcdctl), etcd: { binary: binaries.etcd, ...('version' in etcd ? { version: etcd.version } : {}) } };
}
