/**
 * One delta backup in its own process, for the memory benches (bench/delta-memory.ts,
 * bench/etcd-server-memory.ts): either our DeltaPoller or the naive single-watch sidecar, against a
 * local store throttled per upload stream (like one S3 connection), so the store is the bottleneck.
 *
 * The parent spawns it with `spawnBackupChild(config)` (node --max-semi-space-size=1 plus
 * favourSmallHeap(), as `run` and the operator's workers run), waits for `ready`, writes its workload, then calls
 * `finish(head)`: the child keeps backing up for up to `graceMs` until it has archived `head`, and
 * reports its own memory (VmRSS after start-up, VmHWM at the end) and lag.
 *
 * Lag is measured two ways: in revisions (head - archived, sampled every 200 ms) and in seconds: how
 * long ago the head first passed the archived revision (the age of the oldest revision not yet
 * archived, to within the 200 ms sampling).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Etcd3, IKeyValue } from 'etcd3';
import { DeltaPoller } from '../../src/engine/delta-poller.js';
import { encodeDeltaStream, type DeltaEvent } from '../../src/archive/delta-format.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { favourSmallHeap } from '../../src/engine/heap-mode.js';
import { silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import { deltaKey, fullSnapshotKey } from '../../src/archive/naming.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { ThrottledStore } from '../../test/harness/throttled-store.js';
import { procKbField } from './proc-status.js';

export interface BackupChildConfig {
  mode: 'poller' | 'naive';
  endpoint: string;
  /** Revision already archived (a full snapshot at it is put into the store first). */
  startRevision: number;
  budgetBytes?: number;
  parallelism?: number;
  chunkRevisions?: number;
  /** Per upload stream, like one S3 connection. */
  storeBytesPerSecond: number;
  /** How long the backup may keep catching up after the writes end. */
  graceMs: number;
  /** Leave V8's GC settings at their defaults instead of favourSmallHeap() (the bench's A/B rows). */
  v8Defaults?: boolean;
}

export interface BackupChildResult {
  /** VmRSS after start-up (Node, tsx, etcd3, gRPC loaded; client connected), before any work. */
  baseRssBytes: number;
  /** VmHWM at the end: the process's peak RSS. */
  peakRssBytes: number;
  /** process.memoryUsage().arrayBuffers (Buffer memory, live + not yet collected) at the sampled RSS peak. */
  buffersAtPeakBytes: number;
  budgetPeakBytes?: number;
  parallelism?: number;
  maxLagRevisions: number;
  finalLagRevisions: number;
  maxLagSeconds: number;
  /** Lag when the writes ended. */
  lagAtWritesEndSeconds: number;
  /** Time from the end of the writes until everything was archived, if within graceMs. */
  caughtUpMs?: number;
  uploadedBytes: number;
  seconds: number;
}


/** What watch-based sidecars do: one watch, every event buffered until a single uploader sends it. */
export async function naiveBackup(client: Etcd3, store: ObjectStore, startRevision: number, stop: AbortSignal): Promise<() => number> {
  let buffer: DeltaEvent[] = [];
  let uploaded = startRevision;
  const toEvent = (type: 'PUT' | 'DELETE', kv: IKeyValue): DeltaEvent => ({
    rev: Number(kv.mod_revision),
    type,
    key: kv.key,
    value: kv.value,
    createRev: Number(kv.create_revision),
    modRev: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: String(kv.lease),
  });
  const watcher = await client.watch().prefix('').startRevision(String(startRevision + 1)).create();
  watcher.on('put', (kv) => buffer.push(toEvent('PUT', kv)));
  watcher.on('delete', (kv) => buffer.push(toEvent('DELETE', kv)));
  watcher.on('error', () => undefined);
  void (async () => {
    while (!stop.aborted) {
      if (buffer.length === 0) {
        await sleep(50);
        continue;
      }
      const batch = buffer;
      buffer = [];
      const from = batch[0]!.rev;
      const to = batch[batch.length - 1]!.rev;
      await store.put(deltaKey(from, to, { compression: 'none', encrypted: false }), encodeDeltaStream(batch, 'none'));
      uploaded = to;
    }
    await watcher.cancel();
  })();
  return () => uploaded;
}

/** Tracks lag in revisions and in seconds from periodic (time, head, archived) samples. */
class LagTracker {
  private readonly heads: { at: number; head: number }[] = [];
  maxRevisions = 0;
  maxSeconds = 0;

  sample(now: number, head: number, archived: number): void {
    const last = this.heads[this.heads.length - 1];
    if (!last || head > last.head) this.heads.push({ at: now, head });
    // Drop samples whose revisions are all archived; the first remaining one is when the oldest
    // unarchived revision was first seen.
    while (this.heads.length > 0 && this.heads[0]!.head <= archived) this.heads.shift();
    const oldest = this.heads[0];
    const seconds = oldest ? (now - oldest.at) / 1000 : 0;
    this.maxRevisions = Math.max(this.maxRevisions, head - archived);
    this.maxSeconds = Math.max(this.maxSeconds, seconds);
  }

  secondsNow(now: number): number {
    const oldest = this.heads[0];
    return oldest ? (now - oldest.at) / 1000 : 0;
  }
}

async function runChild(config: BackupChildConfig): Promise<void> {
  const client = createEtcdClient({ endpoints: [config.endpoint] });
  const dir = await mkdtemp(join(tmpdir(), 'bench-delta-store-'));
  const store = new ThrottledStore(new LocalStore(dir), config.storeBytesPerSecond);
  await new LocalStore(dir).put(fullSnapshotKey(config.startRevision, new Date(), { compression: 'none', encrypted: false }), Buffer.from('-'));
  await headRevision(client); // connect before measuring the base
  const baseRssBytes = procKbField(await readFile('/proc/self/status', 'utf8'), 'VmRSS') ?? 0;
  const stop = new AbortController();
  let archived: () => number;
  let poller: DeltaPoller | undefined;
  let budget: MemoryBudget | undefined;
  if (config.mode === 'poller') {
    budget = new MemoryBudget(config.budgetBytes!);
    poller = new DeltaPoller({
      client,
      store,
      budget,
      periodMs: 500,
      chunkRevisions: config.chunkRevisions ?? 100,
      parallelism: config.parallelism ?? 1,
      compression: 'none',
      logger: silentLogger(),
    });
    await poller.start();
    archived = () => poller!.progress.archivedRevision;
  } else {
    archived = await naiveBackup(client, store, config.startRevision, stop.signal);
  }
  const started = Date.now();
  const lag = new LagTracker();
  let head = config.startRevision;
  const sampler = setInterval(() => {
    void headRevision(client).then((h) => {
      head = Math.max(head, h);
      lag.sample(Date.now(), head, archived());
    }, () => undefined);
  }, 200);
  let peakMemory = process.memoryUsage();
  const memorySampler = setInterval(() => {
    const now = process.memoryUsage();
    if (now.rss > peakMemory.rss) peakMemory = now;
  }, 20);
  console.log('ready');

  const finalHead = await new Promise<number>((resolve) => {
    createInterface({ input: process.stdin }).on('line', (line) => {
      const match = /^done (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
  });
  const writesDone = Date.now();
  lag.sample(writesDone, finalHead, archived());
  const lagAtWritesEndSeconds = lag.secondsNow(writesDone);
  let caughtUpMs: number | undefined;
  while (Date.now() - writesDone < config.graceMs) {
    if (archived() >= finalHead) {
      caughtUpMs = Date.now() - writesDone;
      break;
    }
    await sleep(50);
  }
  clearInterval(sampler);
  clearInterval(memorySampler);
  lag.sample(Date.now(), finalHead, archived());
  const finalLag = Math.max(0, finalHead - archived());
  const result: BackupChildResult = {
    baseRssBytes,
    peakRssBytes: procKbField(await readFile('/proc/self/status', 'utf8'), 'VmHWM') ?? 0,
    buffersAtPeakBytes: peakMemory.arrayBuffers,
    budgetPeakBytes: budget?.peakBytes,
    parallelism: poller?.budgetPlan.parallelism,
    maxLagRevisions: lag.maxRevisions,
    finalLagRevisions: finalLag,
    maxLagSeconds: lag.maxSeconds,
    lagAtWritesEndSeconds,
    caughtUpMs,
    uploadedBytes: store.uploadedBytes,
    seconds: (Date.now() - started) / 1000,
  };
  console.log(`result ${JSON.stringify(result)}`);
  stop.abort();
  await Promise.race([poller?.stop(), sleep(3000)]);
  client.close();
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
}

export interface BackupChild {
  process: ChildProcess;
  /** Tells the child the writes ended at `head`; resolves with its report. */
  finish(head: number): Promise<BackupChildResult>;
}

/** Starts a backup child and resolves once it is connected and backing up. */
export async function spawnBackupChild(config: BackupChildConfig): Promise<BackupChild> {
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`backup child exited with ${code} before reporting`))));
  exited.catch(() => undefined);
  const result = new Promise<BackupChildResult>((resolve) => {
    lines.on('line', (line) => {
      if (line.startsWith('result ')) resolve(JSON.parse(line.slice('result '.length)) as BackupChildResult);
    });
  });
  await Promise.race([new Promise<void>((resolve) => lines.on('line', (line) => line === 'ready' && resolve())), exited]);
  return {
    process: child,
    finish: async (head) => {
      child.stdin!.write(`done ${head}\n`);
      const report = await Promise.race([result, exited]);
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
      return report;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const config = JSON.parse(process.argv[2]!) as BackupChildConfig;
  // As `run` and the operator's workers do (the naive baseline too, so both get the same runtime).
  if (!config.v8Defaults) favourSmallHeap();
  await runChild(config);
}
