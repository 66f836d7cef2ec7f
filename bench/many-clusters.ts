/**
 * Many clusters under one operator (issues #7, #18): memory, CPU and delta lag per EtcdBackup for each
 * runner model (runner-models.ts), side by side in one run:
 *   process  one forked Node process per EtcdBackup (the model before #18)
 *   thread   one worker_threads Worker per EtcdBackup (V8 resourceLimits cap each heap)
 *   inline   every supervisor in the operator's own event loop (one MemoryBudget each)
 *
 * One Kubernetes API test server, a pool of local etcds (EtcdBackup i backs up etcd i mod --etcds: the
 * operator's cost per EtcdBackup does not depend on whose etcd it is, and 100 etcd servers would
 * measure etcd, not us), and per model a fresh operator process (the compiled CLI, `node
 * --max-semi-space-size=1 dist/cli/main.js operator --runner-model M`, as the image runs it) on its
 * own namespace. Per model:
 *
 *   baseline  the operator with 0 EtcdBackups
 *   then for each size N (EtcdBackups added to the same operator: 1, 10, 50, 100):
 *     idle    N EtcdBackups Ready (one full snapshot each at start, a schedule that does not fire
 *             again, deltas polled every 10 s), no writes
 *   and at N = 10 (one EtcdBackup per etcd):
 *     busy    every etcd takes --puts puts/s of --value-bytes B (1 MB/s by default); delta lag is
 *             sampled from status every 2 s, and the catch-up time after the writes stop
 *
 * A size whose forked workers would not fit in MemAvailable (100 MiB each, 2 GiB spare) is skipped
 * and the report says so. For each phase it samples, once a second, VmRSS and Pss of the operator
 * process and of its process tree (operator + workers) and takes CPU (utime + stime) over the window.
 * Per-EtcdBackup figures subtract the model's baseline: (X(N) - X(0)) / N.
 * Writes docs/benchmarks.md's "many-clusters" section, two charts (docs/benchmarks/many-clusters-*.svg)
 * and its goal rows (docs/benchmarks/many-clusters.goals.json).
 *
 *   node --import tsx bench/many-clusters.ts [--sizes 1,10,50,100] [--models process,thread,inline] [--process-max 50] [--quick] [--no-docs]
 *
 * --quick: sizes 1,3 and short windows (for development). Everything it starts (etcds, the API
 * server, the operator and its workers) is stopped and its temp dir removed, also on failure or Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Etcd3 } from 'etcd3';
import { parse } from 'yaml';
import { GROUP, PLURAL, VERSION, type EtcdBackup } from '../src/api/v1alpha1/etcd-backup-types.js';
import { createEtcdClient } from '../src/etcd/client.js';
import { startLocalEtcd, type LocalEtcd } from '../src/etcd/local-etcd.js';
import { startKubeApiServer } from '../test/harness/kube-api-server.js';
import { RUNNER_MODELS, type RunnerModel } from '../src/controller/worker-protocol.js';
import { kubeConfigFor, writeKubeconfig } from '../test/harness/kubeconfig.js';
import { buildCli } from './lib/build-cli.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals, type GoalRow } from './lib/goals.js';
import { sampleTree, type ProcessSample } from './lib/process-tree.js';
import { median, MiB, mib } from './lib/stats.js';
import { barChartSvg, writeChart } from './lib/svg-chart.js';
import { markdownTable } from './lib/table.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const CR = { group: GROUP, version: VERSION, plural: PLURAL };
/** Each model's operator watches its own namespace (the previous model's EtcdBackups stay behind). */
const namespaceOf = (model: RunnerModel) => `bench-${model}`;
/** The busy phase runs at this size: one EtcdBackup per etcd of the pool (--etcds, default 10). */
let BUSY_SIZE = 10;
/** What one more forked worker may need, and what must stay free, before a size is started. */
const PROCESS_WORKER_BYTES = 100 * MiB;
const SPARE_BYTES = 2048 * MiB;
/** Measured once (2026-12-04): the rest of the machine could not take it. */
const PROCESS_MAX_WHY =
  'a first run at N = 100 forked workers drove the shared 2-core machine to a load average of 78; the operator, starved, lost its ' +
  'Lease 7 times in 6 minutes and restarted all its workers each time (196 of them had to be killed), so no idle window was measurable';
/** The operator's node flags, as in the Dockerfile and bin/etcd-backup.js. */
const OPERATOR_NODE_FLAGS = ['--max-semi-space-size=1'];
/** Never fires during the run (1 January): the only full snapshot is the one taken at start. */
const QUIET_SCHEDULE = '0 0 1 1 *';

interface Timing {
  /** Wait after the operator has started leading, before the baseline: start-up work (module loading,
   *  JIT, the first lists and Lease renewals) would otherwise count as baseline CPU. */
  startupSettleMs: number;
  /** Wait after the operator is up / all clusters are Ready, before an idle window. */
  settleMs: number;
  idleWindowMs: number;
  /** Writes run this long; the busy window is the same time. */
  busyWindowMs: number;
  /** Per busy etcd. */
  putsPerSecond: number;
  valueBytes: number;
}

const FULL: Timing = { startupSettleMs: 15_000, settleMs: 8_000, idleWindowMs: 20_000, busyWindowMs: 30_000, putsPerSecond: 100, valueBytes: 10_000 };
const QUICK: Timing = { startupSettleMs: 8_000, settleMs: 4_000, idleWindowMs: 8_000, busyWindowMs: 10_000, putsPerSecond: 100, valueBytes: 10_000 };

function log(message: string): void {
  console.log(`[many-clusters ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Cleanup: everything started registers how to stop it; run in reverse, once, also on Ctrl-C.

const cleanups: Array<{ what: string; run: () => Promise<void> }> = [];
let cleaning: Promise<void> | undefined;

function onCleanup(what: string, run: () => Promise<void>): void {
  cleanups.push({ what, run });
}

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const { what, run } of cleanups.reverse()) {
      await run().catch((err: unknown) => console.error(`cleanup of ${what} failed: ${String(err)}`));
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Measurement.

interface Window {
  seconds: number;
  /** Median over the window's samples. */
  operatorRss: number;
  operatorPss: number;
  treeRss: number;
  treePss: number;
  /** The largest 1-second sample of treeRss. */
  treeRssMax: number;
  /** Percent of one core over the window. */
  operatorCpu: number;
  treeCpu: number;
  /** The operator's CPU % in each half of the window: how much it varies by itself. */
  operatorCpuHalves: [number, number];
  processes: number;
}

/** Samples the operator's process tree once a second for `ms`. */
async function measure(operatorPid: number, ms: number): Promise<Window> {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const rows: Array<{ at: number; op: ProcessSample | undefined; tree: ProcessSample[] }> = [];
  const started = performance.now();
  let ended: number;
  for (let i = 0; ; i++) {
    const tree = await sampleTree(operatorPid);
    const now = performance.now();
    if (i === 0) for (const s of tree) first.set(s.pid, s.cpuSeconds);
    for (const s of tree) last.set(s.pid, s.cpuSeconds);
    rows.push({ at: now, op: tree.find((s) => s.pid === operatorPid), tree });
    ended = now;
    if (now - started >= ms) break;
    await sleep(Math.max(0, started + (i + 1) * 1000 - performance.now()));
  }
  const seconds = (ended - started) / 1000;
  // A process that appeared during the window counts from zero (none should: workers start before).
  let treeCpuSeconds = 0;
  for (const [pid, cpu] of last) treeCpuSeconds += cpu - (first.get(pid) ?? 0);
  const operatorCpuSeconds = (last.get(operatorPid) ?? 0) - (first.get(operatorPid) ?? 0);
  const sum = (tree: ProcessSample[], field: 'rssBytes' | 'pssBytes') => tree.reduce((a, s) => a + s[field], 0);
  return {
    seconds,
    operatorRss: median(rows.map((r) => r.op?.rssBytes ?? 0)),
    operatorPss: median(rows.map((r) => r.op?.pssBytes ?? 0)),
    treeRss: median(rows.map((r) => sum(r.tree, 'rssBytes'))),
    treePss: median(rows.map((r) => sum(r.tree, 'pssBytes'))),
    treeRssMax: Math.max(...rows.map((r) => sum(r.tree, 'rssBytes'))),
    operatorCpu: (operatorCpuSeconds / seconds) * 100,
    treeCpu: (treeCpuSeconds / seconds) * 100,
    operatorCpuHalves: halves(rows),
    processes: median(rows.map((r) => r.tree.length)),
  };
}

function halves(rows: Array<{ at: number; op: ProcessSample | undefined }>): [number, number] {
  const first = rows[0]!;
  const last = rows.at(-1)!;
  const mid = rows.find((r) => r.at >= (first.at + last.at) / 2) ?? last;
  const rate = (a: typeof first, b: typeof first) =>
    b.at > a.at ? (((b.op?.cpuSeconds ?? 0) - (a.op?.cpuSeconds ?? 0)) / ((b.at - a.at) / 1000)) * 100 : Number.NaN;
  return [rate(first, mid), rate(mid, last)];
}

// ---------------------------------------------------------------------------------------------
// The world: etcds, API server, operator, EtcdBackups, write load.

interface Cluster {
  name: string;
  etcd: LocalEtcd;
  client: Etcd3;
}

async function startCluster(work: string, index: number): Promise<Cluster> {
  const dir = join(work, 'etcd', String(index));
  const etcd = await startLocalEtcd({
    dataDir: join(dir, 'data'),
    name: `bench${index}`,
    // Light: small quota, frequent raft snapshots (less raft log held in etcd's memory).
    extraArgs: ['--quota-backend-bytes', String(256 * MiB), '--snapshot-count', '5000'],
    readyTimeoutMs: 60_000,
  });
  const client = createEtcdClient({ endpoints: [etcd.clientUrl] });
  onCleanup(`etcd ${index}`, async () => {
    client.close();
    await etcd.stop();
  });
  return { name: `bench-${index}`, etcd, client };
}

interface RunningOperator {
  child: ChildProcess;
  pid: number;
  /** SIGTERM (the operator stops its workers first), SIGKILL after 30 s; idempotent. */
  stop(): Promise<void>;
  lines: string[];
  /** Times it lost its Lease (and so stopped every worker): a sign the machine starved it. */
  leaseLosses(): number;
  waitForLine(message: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

async function startOperator(mainJs: string, kubeconfig: string, work: string, model: RunnerModel): Promise<RunningOperator> {
  const namespace = namespaceOf(model);
  // The local sample's store is refused by the operator's defaults (docs/security.md).
  const args = [
    ...OPERATOR_NODE_FLAGS, mainJs, 'operator', '--kubeconfig', kubeconfig, '--namespace', namespace, '--metrics-port', '0',
    '--allow-local-store', '--runner-model', model,
    // The bench's API server shares its event loop with the write load and the lag sampler: on a
    // loaded machine Lease renewals missed their deadline and every lost Lease restarted all workers.
    '--no-leader-election',
  ];
  const child = spawn(process.execPath, args, {
    cwd: work,
    // The Lease lives in the watched namespace, so a second operator on another namespace leads at once.
    env: { ...process.env, POD_NAMESPACE: namespace, KUBECONFIG: kubeconfig },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the operator');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM'); // stops every worker, then exits
    const grace = new AbortController();
    const stopped = await Promise.race([exited.then(() => true), sleep(30_000, false, { signal: grace.signal }).catch(() => false)]);
    grace.abort(); // a pending timer would keep this process alive
    if (!stopped) {
      log('operator did not stop within 30 s of SIGTERM; killing it (its workers exit when the IPC channel closes)');
      child.kill('SIGKILL');
      await exited;
    }
  };
  onCleanup(`operator (${namespace})`, stop);
  const file = createWriteStream(join(work, `operator-${namespace}.log`));
  const lines: string[] = [];
  let leaseLosses = 0;
  const waiters: Array<{ message: string; resolve: (line: Record<string, unknown>) => void }> = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.pipe(file, { end: false });
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (parsed.message === 'Lost leader Lease; stopping all work') leaseLosses++;
      for (const w of [...waiters]) {
        if (parsed.message === w.message) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    });
  }
  return {
    child,
    pid,
    stop,
    lines,
    leaseLosses: () => leaseLosses,
    waitForLine: (message, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`operator did not log "${message}" within ${timeoutMs} ms:\n${lines.slice(-10).join('\n')}`)), timeoutMs);
        waiters.push({ message, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then(() => reject(new Error(`operator exited:\n${lines.slice(-10).join('\n')}`)));
      }),
  };
}

/** The config/samples local spec, on `cluster`, with a schedule that does not fire and deltas every 10 s. */
function backupFor(name: string, namespace: string, cluster: Cluster, storeDir: string): EtcdBackup {
  const doc = parse(readFileSync(join(repo, 'config/samples/etcdbackup_v1alpha1_local.yaml'), 'utf8')) as EtcdBackup;
  doc.metadata = { name, namespace };
  doc.spec.etcd.endpoints = [cluster.etcd.clientUrl];
  doc.spec.store.local!.path = storeDir;
  doc.spec.fullSnapshot.schedule = QUIET_SCHEDULE;
  doc.spec.deltaSnapshot = { ...doc.spec.deltaSnapshot, period: DELTA_PERIOD };
  return doc;
}

const DELTA_PERIOD = '10s';

async function listBackups(co: CustomObjectsApi, namespace: string): Promise<EtcdBackup[]> {
  return ((await co.listNamespacedCustomObject({ ...CR, namespace })) as { items: EtcdBackup[] }).items;
}

async function waitAllReady(co: CustomObjectsApi, namespace: string, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = { items: await listBackups(co, namespace) };
    const ready = list.items.filter((o) => o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (ready.length >= count) return;
    if (Date.now() > deadline) {
      const notReady = list.items
        .filter((o) => !ready.includes(o))
        .map((o) => `${o.metadata.name}: ${o.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? 'no status'}`);
      throw new Error(`${ready.length}/${count} EtcdBackups Ready after ${timeoutMs / 1000} s: ${notReady.slice(0, 3).join('; ')}`);
    }
    await sleep(1000);
  }
}

/** `perSecond` puts of `valueBytes` on each cluster for `ms`, issued on a clock (10 ticks a second). */
async function writeLoad(clusters: Cluster[], perSecond: number, valueBytes: number, ms: number): Promise<{ puts: number; failed: number }> {
  const value = randomBytes(valueBytes);
  const perTick = perSecond / 10;
  let puts = 0;
  let failed = 0;
  const inflight = new Set<Promise<unknown>>();
  const start = performance.now();
  for (let tick = 0; performance.now() - start < ms; tick++) {
    for (const cluster of clusters) {
      for (let j = 0; j < perTick; j++) {
        const p = cluster.client
          .put(`load/${(tick * perTick + j) % 1000}`)
          .value(value)
          .exec()
          .then(() => puts++, () => failed++);
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
    }
    await sleep(Math.max(0, start + (tick + 1) * 100 - performance.now()));
  }
  await Promise.all(inflight);
  return { puts, failed };
}

/**
 * While `until` is pending, every 2 s: each busy EtcdBackup's lag, head(its etcd) - status.archivedRevision
 * (status is what a person sees: it trails the worker by up to the status interval, 5 s).
 */
async function sampleLag(co: CustomObjectsApi, namespace: string, busy: Array<{ name: string; cluster: Cluster }>, until: Promise<unknown>): Promise<number[]> {
  const lags: number[] = [];
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    const heads = await Promise.all(busy.map(({ cluster }) => headOf(cluster)));
    const byName = new Map((await listBackups(co, namespace)).map((o) => [o.metadata.name, o.status?.archivedRevision ?? 0]));
    busy.forEach(({ name }, i) => lags.push(Math.max(0, heads[i]! - (byName.get(name) ?? 0))));
    await sleep(2000);
  }
  return lags;
}

async function headOf(cluster: Cluster): Promise<number> {
  return Number((await cluster.client.get('none').exec()).header.revision);
}

/** Seconds from the end of the writes until every busy EtcdBackup's status has archived the last write. */
async function catchUp(co: CustomObjectsApi, namespace: string, busy: Array<{ name: string; cluster: Cluster }>, timeoutMs: number): Promise<number> {
  const heads = new Map(await Promise.all(busy.map(async ({ name, cluster }) => [name, await headOf(cluster)] as const)));
  const started = performance.now();
  for (;;) {
    const items = await listBackups(co, namespace);
    if (busy.every(({ name }) => (items.find((o) => o.metadata.name === name)?.status?.archivedRevision ?? 0) >= heads.get(name)!)) {
      return (performance.now() - started) / 1000;
    }
    if (performance.now() - started > timeoutMs) return Number.NaN;
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

interface Phase {
  model: RunnerModel;
  clusters: number;
  kind: 'baseline' | 'idle' | 'busy';
  window: Window;
  /** Busy: puts that etcd acknowledged, per second over the window, all etcds together. */
  putsPerSecond?: number;
  failedPuts?: number;
  /** Busy: lag samples (revisions) and the catch-up after the writes. */
  lags?: number[];
  catchUpSeconds?: number;
}

/** Per EtcdBackup at size N, minus the model's 0-EtcdBackup baseline: (X(N) - X(0)) / N. Bytes and percent of one core. */
interface PerBackup {
  model: RunnerModel;
  clusters: number;
  treeRss: number;
  treePss: number;
  treeCpu: number;
  /** operator + workers, all of it (not per EtcdBackup). */
  totalTreeRss: number;
}

const GOAL_BYTES = 5 * MiB;
const GOAL_TOTAL_BYTES = 1024 * MiB;
const GOAL_GROWTH_EXTRA = 64 * MiB;
const SECTION = 'many-clusters';

function perBackupFigures(phases: Phase[]): PerBackup[] {
  return phases.flatMap((phase): PerBackup[] => {
    const base = phases.find((p) => p.model === phase.model && p.kind === 'baseline')?.window;
    if (phase.kind !== 'idle' || !base) return [];
    const per = (field: 'treeRss' | 'treePss' | 'treeCpu') => (phase.window[field] - base[field]) / phase.clusters;
    return [{ model: phase.model, clusters: phase.clusters, treeRss: per('treeRss'), treePss: per('treePss'), treeCpu: per('treeCpu'), totalTreeRss: phase.window.treeRss }];
  });
}

interface Busy {
  model: RunnerModel;
  growth: number;
  cpu: number;
  lagMedian: number;
  lagMax: number;
  catchUpSeconds: number;
  putsPerSecond: number;
}

function busyFigures(phases: Phase[]): Busy[] {
  return phases.flatMap((phase): Busy[] => {
    const idle = phases.find((p) => p.model === phase.model && p.kind === 'idle' && p.clusters === phase.clusters)?.window;
    if (phase.kind !== 'busy' || !idle) return [];
    const lags = phase.lags ?? [];
    return [{
      model: phase.model,
      growth: phase.window.treeRssMax - idle.treeRss,
      cpu: phase.window.treeCpu,
      lagMedian: lags.length ? median(lags) : Number.NaN,
      lagMax: lags.length ? Math.max(...lags) : Number.NaN,
      catchUpSeconds: phase.catchUpSeconds ?? Number.NaN,
      putsPerSecond: phase.putsPerSecond ?? 0,
    }];
  });
}

function goalRows(per: PerBackup[], busy: Busy[], budgetBytes: number): GoalRow[] {
  const rows: GoalRow[] = [];
  for (const model of RUNNER_MODELS) {
    const largest = per.filter((p) => p.model === model).at(-1);
    if (!largest) continue;
    rows.push(
      {
        goal: `<= 5 MiB RSS per idle EtcdBackup, operator + workers, runner model ${model} (N = ${largest.clusters})`,
        measured: `${mib(largest.treeRss)} MiB (PSS ${mib(largest.treePss)})`,
        met: largest.treeRss <= GOAL_BYTES,
      },
      {
        goal: `operator + workers < 1 GiB RSS with 100 idle EtcdBackups, runner model ${model}`,
        measured: largest.clusters >= 100 ? `${mib(largest.totalTreeRss)} MiB` : `not measured at 100 (largest N = ${largest.clusters}: ${mib(largest.totalTreeRss)} MiB)`,
        met: largest.clusters >= 100 && largest.totalTreeRss < GOAL_TOTAL_BYTES,
      },
    );
    const b = busy.find((x) => x.model === model);
    if (b) {
      const limit = BUSY_SIZE * (budgetBytes + GOAL_GROWTH_EXTRA);
      rows.push({
        goal: `RSS growth under load <= sum of (budget + 64 MiB) over ${BUSY_SIZE} busy EtcdBackups (${mib(limit)} MiB), runner model ${model}`,
        measured: `${mib(b.growth)} MiB`,
        met: b.growth <= limit,
      });
    }
  }
  return rows;
}

function pct(value: number): string {
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

async function charts(per: PerBackup[], sizes: number[]): Promise<string> {
  const categories = sizes.map((n) => `N = ${n}`);
  const valuesOf = (model: RunnerModel, pick: (p: PerBackup) => number) =>
    sizes.map((n) => {
      const p = per.find((x) => x.model === model && x.clusters === n);
      return p ? pick(p) : Number.NaN;
    });
  const memoryTitle = 'Many clusters: RSS per idle EtcdBackup, operator + workers (minus the 0-EtcdBackup baseline)';
  const cpuTitle = 'Many clusters: CPU per idle EtcdBackup, operator + workers (minus the baseline)';
  return [
    await writeChart(
      `${SECTION}-memory`,
      memoryTitle,
      barChartSvg({
        title: memoryTitle,
        yLabel: 'MiB per EtcdBackup',
        categories,
        series: RUNNER_MODELS.map((model) => ({ name: `${model}: RSS`, values: valuesOf(model, (p) => p.treeRss / MiB) })),
        goal: { value: GOAL_BYTES / MiB, label: 'goal 5 MiB' },
      }),
    ),
    await writeChart(
      `${SECTION}-cpu`,
      cpuTitle,
      barChartSvg({
        title: cpuTitle,
        yLabel: '% of one core per EtcdBackup',
        categories,
        series: RUNNER_MODELS.map((model) => ({ name: model, values: valuesOf(model, (p) => p.treeCpu) })),
      }),
    ),
  ].join('\n');
}

function report(
  phases: Phase[],
  timing: Timing,
  meta: { commit: string; warnings?: string; charts: string; skipped: string[]; etcds: number; budgetBytes: number; load: string },
): string {
  const per = perBackupFigures(phases);
  const busy = busyFigures(phases);
  const measuredTable = markdownTable(
    [
      { title: 'model' },
      { title: 'EtcdBackups', align: 'right' },
      { title: 'phase' },
      { title: 'operator RSS MiB', align: 'right' },
      { title: 'operator+workers RSS MiB', align: 'right' },
      { title: 'operator+workers PSS MiB', align: 'right' },
      { title: 'processes', align: 'right' },
      { title: 'operator+workers CPU %', align: 'right' },
      { title: 'puts/s (all etcds)', align: 'right' },
    ],
    phases.map((p) => [
      p.model,
      String(p.clusters),
      p.kind,
      mib(p.window.operatorRss),
      mib(p.window.treeRss),
      mib(p.window.treePss),
      String(p.window.processes),
      pct(p.window.treeCpu),
      p.putsPerSecond === undefined ? '-' : `${p.putsPerSecond.toFixed(0)}${p.failedPuts ? ` (${p.failedPuts} failed)` : ''}`,
    ]),
  );
  const perTable = markdownTable(
    [
      { title: 'model' },
      { title: 'EtcdBackups', align: 'right' },
      { title: 'RSS MiB per idle EtcdBackup', align: 'right' },
      { title: 'PSS MiB per idle EtcdBackup', align: 'right' },
      { title: 'CPU % per idle EtcdBackup', align: 'right' },
      { title: 'operator+workers RSS MiB in all', align: 'right' },
    ],
    per.map((p) => [p.model, String(p.clusters), mib(p.treeRss), mib(p.treePss), pct(p.treeCpu), mib(p.totalTreeRss)]),
  );
  const busyTable = markdownTable(
    [
      { title: 'model' },
      { title: 'puts/s (all etcds)', align: 'right' },
      { title: 'operator+workers CPU %', align: 'right' },
      { title: 'RSS growth MiB (peak - idle)', align: 'right' },
      { title: 'lag median revisions', align: 'right' },
      { title: 'lag max revisions', align: 'right' },
      { title: 'catch-up s after writes stop', align: 'right' },
    ],
    busy.map((b) => [b.model, b.putsPerSecond.toFixed(0), pct(b.cpu), mib(b.growth), String(b.lagMedian), String(b.lagMax), b.catchUpSeconds.toFixed(1)]),
  );
  const goals = goalRows(per, busy, meta.budgetBytes);
  const goalTable = markdownTable(
    [{ title: 'goal' }, { title: 'measured' }, { title: 'met' }],
    goals.map((g) => [g.goal, g.measured, g.met ? 'yes' : 'no']),
  );
  const sizes = [...new Set(per.map((p) => p.clusters))].join(', ');
  return `## Many clusters under one operator (\`bench/many-clusters.ts\`)

Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}, CLI built from \`${meta.commit}\`, on a 2-core VM (load average at the
start and end of the run: ${meta.load}; CPU figures are noisier than memory figures when the load is high). One Kubernetes API test server (test/harness, in the bench process) and, per runner model, a fresh operator
process on its own namespace, the compiled CLI as the image runs it (\`node --max-semi-space-size=1 dist/cli/main.js
operator --runner-model M --no-leader-election\`; see "Leader election off" below). ${meta.etcds} local etcd 3.4 servers on 127.0.0.1 (256 MiB quota) serve as the clusters:
EtcdBackup i backs up etcd i mod ${meta.etcds} (each EtcdBackup has its own etcd client and its own store directory; what
an EtcdBackup costs the operator does not depend on whose etcd it is). Each EtcdBackup has the config/samples local spec
(budget ${mib(meta.budgetBytes)} MiB, chunkParallelism 4, gzip) with a full-snapshot schedule that does not fire in the run (the
one full snapshot is the one taken at start) and deltas polled every ${DELTA_PERIOD}.${meta.warnings ? `\n(tsc reported errors; the emitted CLI was measured: ${meta.warnings})` : ''}

Phases per model: **baseline** with 0 EtcdBackups (after ${timing.startupSettleMs / 1000} s of start-up), then for each size N (EtcdBackups
added to the same operator: ${sizes}) **idle** (all Ready, ${timing.settleMs / 1000} s settle, no writes, ${timing.idleWindowMs / 1000} s window), and at
N = ${BUSY_SIZE} (one EtcdBackup per etcd) **busy**: every etcd takes ${timing.putsPerSecond} puts/s of ${timing.valueBytes} B
(${mib(timing.putsPerSecond * timing.valueBytes)} MiB/s each) for ${timing.busyWindowMs / 1000} s. Memory is the median of 1-second samples of VmRSS
and Pss (shared pages split between the processes that map them), summed over the operator's process tree (the
operator, plus its workers in the process model). CPU is utime + stime over the window, in percent of one core.
${meta.skipped.length ? `\nNot measured: ${meta.skipped.join('; ')}.\n` : ''}
Per idle EtcdBackup, operator + workers, minus the model's baseline, (X(N) - X(0)) / N:

${perTable}

Under load (${BUSY_SIZE} busy EtcdBackups; growth is the largest 1-second RSS sample of the busy window minus the
idle median at N = ${BUSY_SIZE}; lag is head revision minus status.archivedRevision, sampled every 2 s, so it includes the
poll period of ${DELTA_PERIOD} and the status interval of 5 s):

${busyTable}

Goals:

${goalTable}

Measured per phase:

${measuredTable}

**Leader election off.** Two earlier runs the same day kept it on. Under the load of the shared machine (load
average 30-78) the operator missed its 10 s renew deadline again and again: with 100 forked workers it lost its
Lease 7 times in 6 minutes; with 10 forked workers under write load twice (the busy window then measured stopped
workers); with 100 worker threads it lost it twice while the threads started, after which every stop and start
of 100 threads took longer than the stop timeout (691 threads terminated) and N = 100 never became Ready. Every
lost Lease stops and restarts all of an operator's workers, which is what a starved leader must do; it says
that a crowded 2-core node cannot host 100 processes or threads of ours, and it made those windows
unmeasurable. The first run's process model at N = 10 under the same write load, before its Lease loss (commit
\`0952916\`, same code): 880 MiB idle, 1225 MiB peak busy (growth 345 MiB), 21 % CPU, lag median 739 / max 1308
revisions, catch-up 8.1 s.

${meta.charts || 'No charts (run without --no-docs to write them).'}

Re-run: \`node --import tsx bench/many-clusters.ts\` (about 30 minutes on a quiet machine; \`--quick\` for sizes 1 and 3
with short windows, \`--sizes 1,5\` for other sizes, \`--models thread,inline\` for fewer models). It rewrites only
this section, its two charts and its goal rows.`;
}

// ---------------------------------------------------------------------------------------------

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function memAvailable(): number {
  const kb = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return kb === undefined ? Number.POSITIVE_INFINITY : Number(kb) * 1024;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string' },
      models: { type: 'string' },
      etcds: { type: 'string', default: '10' },
      'process-max': { type: 'string', default: '50' },
      quick: { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
    },
  });
  const timing = values.quick ? QUICK : FULL;
  const sizes = (values.sizes ?? (values.quick ? '1,3' : '1,10,50,100')).split(',').map(Number);
  if (sizes.some((n, i) => !Number.isInteger(n) || n < 1 || (i > 0 && n <= sizes[i - 1]!))) {
    throw new Error('--sizes: increasing positive integers, e.g. 1,10,50,100');
  }
  const models = (values.models ?? RUNNER_MODELS.join(',')).split(',') as RunnerModel[];
  if (models.some((m) => !RUNNER_MODELS.includes(m))) throw new Error(`--models: some of ${RUNNER_MODELS.join(',')}`);
  const etcdCount = Number(values.etcds);
  BUSY_SIZE = etcdCount;
  const startLoad = loadAverage();

  const work = await mkdtemp(join(tmpdir(), 'bench-many-clusters-'));
  onCleanup('temp dir', () => rm(work, { recursive: true, force: true }));
  log(`work dir ${work}; sizes ${sizes.join(', ')}; models ${models.join(', ')}; load ${startLoad}`);

  const cli = await buildCli(repo, join(work, 'build'));
  log(`built the CLI from ${cli.commit}${cli.warnings ? ` (tsc warnings: ${cli.warnings})` : ''}`);

  const api = await startKubeApiServer();
  onCleanup('API server', () => api.stop());
  const kubeconfig = await writeKubeconfig(work, api.url);
  const kc = kubeConfigFor(api.url);
  const co = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  await kubectl(kubeconfig, ['apply', '-f', join(repo, 'crds/')]);

  const clusters: Cluster[] = [];
  while (clusters.length < etcdCount) {
    const batch = Array.from({ length: Math.min(5, etcdCount - clusters.length) }, (_, i) => startCluster(work, clusters.length + i));
    clusters.push(...(await Promise.all(batch)));
  }
  log(`${clusters.length} etcds up`);
  const budgetBytes = 128 * MiB; // the sample's spec.memory.budget

  const phases: Phase[] = [];
  const skipped: string[] = [];
  const record = (phase: Phase) => {
    phases.push(phase);
    const w = phase.window;
    log(
      `${phase.model}, N=${phase.clusters} ${phase.kind}: operator RSS ${mib(w.operatorRss)} MiB, tree RSS ${mib(w.treeRss)} MiB ` +
        `(PSS ${mib(w.treePss)}, max ${mib(w.treeRssMax)}, ${w.processes} processes), CPU tree ${pct(w.treeCpu)} %` +
        (phase.putsPerSecond === undefined ? '' : `, ${phase.putsPerSecond.toFixed(0)} puts/s, ${phase.failedPuts} failed`) +
        (phase.lags ? `, lag median ${median(phase.lags)} max ${Math.max(...phase.lags)}, catch-up ${phase.catchUpSeconds?.toFixed(1)} s` : ''),
    );
  };

  for (const model of models) {
    const namespace = namespaceOf(model);
    await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(() => undefined);
    const operator = await startOperator(cli.mainJs, kubeconfig, work, model);
    await operator.waitForLine('Started EtcdBackup controller', 60_000);
    log(`${model}: operator pid ${operator.pid} is running; settling`);
    await sleep(timing.startupSettleMs);
    record({ model, clusters: 0, kind: 'baseline', window: await measure(operator.pid, timing.idleWindowMs) });
    let created = 0;
    for (const n of sizes) {
      if (model === 'process' && n > Number(values['process-max'])) {
        skipped.push(`process model at N = ${n} and above (--process-max ${values['process-max']}: ${PROCESS_MAX_WHY})`);
        break;
      }
      if (model === 'process' && memAvailable() - (n - created) * PROCESS_WORKER_BYTES < SPARE_BYTES) {
        skipped.push(`process model at N = ${n} and above (${n - created} more forked workers would not fit in the ${mib(memAvailable())} MiB available with ${mib(SPARE_BYTES)} MiB spare)`);
        break;
      }
      for (; created < n; created++) {
        const name = `eb-${created}`;
        const storeDir = join(work, 'stores', model, name);
        await mkdir(storeDir, { recursive: true });
        await co.createNamespacedCustomObject({ ...CR, namespace, body: backupFor(name, namespace, clusters[created % clusters.length]!, storeDir) });
      }
      const notReady = await waitAllReady(co, namespace, n, 120_000 + n * 3_000).then(() => undefined, (err: Error) => err.message);
      if (notReady !== undefined) {
        skipped.push(`${model} model at N = ${n} and above (${notReady.slice(0, 300)})`);
        log(`${model}: ${notReady}`);
        break;
      }
      log(`${model}: ${n} EtcdBackups Ready; settling`);
      await sleep(timing.settleMs);
      record({ model, clusters: n, kind: 'idle', window: await measure(operator.pid, timing.idleWindowMs) });

      if (n === BUSY_SIZE && clusters.length >= BUSY_SIZE) {
        const busy = clusters.slice(0, BUSY_SIZE).map((cluster, i) => ({ name: `eb-${i}`, cluster }));
        const load = writeLoad(busy.map((b) => b.cluster), timing.putsPerSecond, timing.valueBytes, timing.busyWindowMs);
        const [window, lags, done] = await Promise.all([measure(operator.pid, timing.busyWindowMs), sampleLag(co, namespace, busy, load), load]);
        const catchUpSeconds = await catchUp(co, namespace, busy, 300_000);
        record({ model, clusters: n, kind: 'busy', window, putsPerSecond: done.puts / window.seconds, failedPuts: done.failed, lags, catchUpSeconds });
        await sleep(timing.settleMs);
      }
    }
    if (operator.leaseLosses() > 0) {
      skipped.push(`${model}: the operator lost its Lease ${operator.leaseLosses()} times in its series (starved of CPU), stopping and restarting every worker each time`);
    }
    await operator.stop();
    log(`${model}: operator stopped`);
  }

  const write = !values['no-docs'];
  const endLoad = loadAverage();
  const per = perBackupFigures(phases);
  const body = report(phases, timing, {
    ...cli,
    charts: write ? await charts(per, sizes) : '',
    skipped,
    etcds: clusters.length,
    budgetBytes,
    load: `${startLoad} and ${endLoad} (1, 5, 15 min)`,
  });
  console.log(`\n${body}\n`);
  if (write) {
    await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, body);
    await recordGoals(SECTION, goalRows(per, busyFigures(phases), budgetBytes));
    log(`wrote docs/benchmarks.md section ${SECTION}, its charts and goal rows`);
  }
}

async function kubectl(kubeconfig: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl ${args.join(' ')} failed (${code}): ${err}`))));
  });
}

try {
  await main();
} catch (err) {
  console.error(`many-clusters failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
