/**
 * One `restore` in its own process, for bench/restore.ts's memory rows: restore's own peak RSS is then
 * this process's (VmHWM), not the bench's, which also ran the source etcd's client and the archiver.
 * Started with node --max-semi-space-size=1, as bin/etcd-backup.js starts the CLI.
 *
 *   node --max-semi-space-size=1 --import tsx bench/lib/restore-child.ts '<RestoreChildConfig as JSON>'
 *
 * Prints one JSON line (RestoreChildReport) on stdout.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { favourSmallHeap } from '../../src/engine/heap-mode.js';
import type { EtcdBinaries } from '../../src/etcd/etcd-tools.js';
import { peakRssBytes } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';

export interface RestoreChildConfig {
  storeDir: string;
  dataDir: string;
  tools: EtcdBinaries;
  /** RestoreOptions.memberRestartBytes; default restore's. */
  memberRestartBytes?: number;
}

export interface RestoreChildReport {
  revision: number;
  revisionsApplied: number;
  seconds: number;
  replaySeconds: number;
  memberPeakRssBytes: number | undefined;
  memberPeakAnonRssBytes: number | undefined;
  memberRestarts: number;
  dataDirOnTmpfs: boolean;
  ownPeakRssBytes: number;
}

/** Runs the child and resolves with its report. */
export async function runRestoreChild(config: RestoreChildConfig): Promise<RestoreChildReport> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`restore child exited with ${code}: ${out.trim()}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as RestoreChildReport;
}

async function main(config: RestoreChildConfig): Promise<void> {
  favourSmallHeap();
  const started = performance.now();
  const result = await restoreBackup({ store: new LocalStore(config.storeDir), dataDir: config.dataDir, tools: config.tools, memberRestartBytes: config.memberRestartBytes, logger: silentLogger() });
  const report: RestoreChildReport = {
    revision: result.revision,
    revisionsApplied: result.revisionsApplied,
    seconds: (performance.now() - started) / 1000,
    replaySeconds: result.replaySeconds,
    memberPeakRssBytes: result.temporaryMember.peakRssBytes,
    memberPeakAnonRssBytes: result.temporaryMember.peakAnonRssBytes,
    memberRestarts: result.temporaryMember.restarts,
    dataDirOnTmpfs: result.temporaryMember.dataDirOnTmpfs,
    ownPeakRssBytes: (await peakRssBytes(process.pid)) ?? 0,
  };
  console.log(JSON.stringify(report));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(JSON.parse(process.argv[2]!) as RestoreChildConfig);
