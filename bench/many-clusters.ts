/**
 * Many clusters under one operator (issue #7): the operator's memory and CPU per idle and per busy
 * EtcdBackup, for 1, 10 and 20 local etcds.
 *
 * One Kubernetes API test server, one operator process (the compiled CLI, `node
 * --max-semi-space-size=1 dist/cli/main.js operator`, as the image runs it) with the default runner:
 * a forked worker process per EtcdBackup. In one run:
 *
 *   baseline  the operator with 0 EtcdBackups
 *   then for each size N (clusters are added to the same operator: 1, then 9 more, then 10 more):
 *     idle    N EtcdBackups Ready (one full snapshot each at start, a schedule that does not fire
 *             again, deltas polled every 20 s), no writes
 *     busy    the same while every etcd takes 100 puts/s of 1 kB
 *
 * Then, if the compiled commit has it, the same sizes with `spec.runner: pod` under a second operator
 * (its own namespace and 0-cluster baseline, S3 stores on an in-process s3rver): the operator creates a
 * worker Deployment per cluster, which nothing runs here (no kubelet), and reads status from the store.
 *
 * For each phase it samples, once a second, VmRSS and Pss of the operator process and of its whole
 * process tree (operator + workers) and takes CPU (utime + stime) over the window. Per-cluster figures
 * subtract the baseline: (RSS(N) - RSS(0)) / N, (CPU(N) - CPU(0)) / N.
 * Writes docs/benchmarks.md's "many-clusters" section, two charts (docs/benchmarks/many-clusters-*.svg) and
 * its goal rows (docs/benchmarks/many-clusters.goals.json).
 *
 *   node --import tsx bench/many-clusters.ts [--sizes 1,10,20] [--quick] [--no-pod] [--no-docs]
 *
 * --quick: sizes 1,3 and short windows (for development). Everything it starts (etcds, the API
 * server, the operator and its workers) is stopped and its temp dir removed, also on failure or Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Etcd3 } from 'etcd3';
import { parse } from 'yaml';
import { GROUP, PLURAL, VERSION, type EtcdBackup } from '../src/api/v1alpha1/etcd-backup-types.js';
import { createEtcdClient } from '../src/etcd/client.js';
import { startLocalEtcd, type LocalEtcd } from '../src/etcd/local-etcd.js';
import { startKubeApiServer } from '../test/harness/kube-api-server.js';
import { startTestS3, type TestS3 } from '../test/harness/s3.js';
import { kubeConfigFor, writeKubeconfig } from '../test/harness/kubeconfig.js';
import { buildCli } from './lib/build-cli.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals, type GoalRow } from './lib/goals.js';
import { sampleTree, type ProcessSample } from './lib/process-tree.js';
import { median, MiB, mib } from './lib/stats.js';
import { barChartSvg, writeChart } from './lib/svg-chart.js';
import { markdownTable } from './lib/table.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const NS = 'default';
/** The runner: pod series runs in its own namespace under a second operator (the first one's EtcdBackups stay behind). */
const POD_NS = 'pod-runner';
const CR = { group: GROUP, version: VERSION, plural: PLURAL };
/** runner: pod needs an image; nothing pulls it here (no kubelet). */
const UNUSED_IMAGE = 'registry.invalid/etcd-backup:bench';
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
  putsPerSecond: number;
  valueBytes: number;
}

const FULL: Timing = { startupSettleMs: 15_000, settleMs: 8_000, idleWindowMs: 20_000, busyWindowMs: 20_000, putsPerSecond: 100, valueBytes: 1000 };
const QUICK: Timing = { startupSettleMs: 8_000, settleMs: 4_000, idleWindowMs: 8_000, busyWindowMs: 8_000, putsPerSecond: 100, valueBytes: 1000 };

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
  waitForLine(message: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

async function startOperator(mainJs: string, kubeconfig: string, work: string, namespace: string): Promise<RunningOperator> {
  // The local sample's store and the pod image are refused by the operator's defaults (docs/security.md).
  const policy = ['--allow-local-store', '--allowed-worker-images', UNUSED_IMAGE];
  const args = [...OPERATOR_NODE_FLAGS, mainJs, 'operator', '--kubeconfig', kubeconfig, '--namespace', namespace, '--metrics-port', '0', ...policy];
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
    waitForLine: (message, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`operator did not log "${message}" within ${timeoutMs} ms:\n${lines.slice(-10).join('\n')}`)), timeoutMs);
        waiters.push({ message, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then(() => reject(new Error(`operator exited:\n${lines.slice(-10).join('\n')}`)));
      }),
  };
}

function backupFor(cluster: Cluster, storeDir: string): EtcdBackup {
  const doc = parse(readFileSync(join(repo, 'config/samples/etcdbackup_v1alpha1_local.yaml'), 'utf8')) as EtcdBackup;
  doc.metadata = { name: cluster.name, namespace: NS };
  doc.spec.etcd.endpoints = [cluster.etcd.clientUrl];
  doc.spec.store.local!.path = storeDir;
  doc.spec.fullSnapshot.schedule = QUIET_SCHEDULE;
  return doc;
}

/** The same spec with runner: pod and an S3 store (runner: pod requires one: the operator reads status from it). */
function podBackupFor(cluster: Cluster, s3: TestS3): EtcdBackup {
  const doc = backupFor(cluster, '/unused');
  doc.metadata = { name: cluster.name, namespace: POD_NS };
  doc.spec.store = {
    s3: {
      bucket: s3.bucket,
      prefix: cluster.name,
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: 's3-credentials' },
      insecure: true, // the test S3 server speaks http on 127.0.0.1
    },
  };
  doc.spec.runner = 'pod';
  doc.spec.pod = { image: UNUSED_IMAGE };
  return doc;
}

async function waitAllReady(co: CustomObjectsApi, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = (await co.listNamespacedCustomObject({ ...CR, namespace: NS })) as { items: EtcdBackup[] };
    const ready = list.items.filter((o) => o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (ready.length >= count) return;
    if (Date.now() > deadline) {
      const notReady = list.items
        .filter((o) => !ready.includes(o))
        .map((o) => `${o.metadata.name}: ${o.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? 'no status'}`);
      throw new Error(`${ready.length}/${count} EtcdBackups Ready after ${timeoutMs / 1000} s: ${notReady.join('; ')}`);
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

// ---------------------------------------------------------------------------------------------
// Report.

type RunnerKind = 'operator' | 'pod';

interface Phase {
  runner: RunnerKind;
  clusters: number;
  kind: 'baseline' | 'idle' | 'busy';
  window: Window;
  /** Busy phases: puts that etcd acknowledged, per second over the window, all clusters together. */
  putsPerSecond?: number;
  failedPuts?: number;
}

/** Per cluster at size N, minus the same runner's 0-cluster baseline: (X(N) - X(0)) / N. Bytes and percent of one core. */
interface PerCluster {
  runner: RunnerKind;
  clusters: number;
  idleOperatorRss: number;
  idleOperatorPss: number;
  idleTreeRss: number;
  idleTreePss: number;
  idleOperatorCpu: number;
  idleTreeCpu: number;
  /** What each cluster added since the previous size: (X(N) - X(N_prev)) / (N - N_prev); one-off costs of the first cluster drop out. */
  marginalOperatorRss?: number;
  marginalTreeRss?: number;
  /** Default runner only (with runner: pod the writes reach no process of ours). */
  busy?: { treeRss: number; operatorCpu: number; treeCpu: number };
}

const GOAL_BYTES = 5 * MiB;
const SECTION = 'many-clusters';

/** The single-number fields of a window. */
type Figure = Exclude<keyof Window, 'operatorCpuHalves'>;

function perClusterFigures(phases: Phase[]): PerCluster[] {
  const out: PerCluster[] = [];
  for (const runner of ['operator', 'pod'] as const) {
    const base = phases.find((p) => p.runner === runner && p.kind === 'baseline')?.window;
    if (!base) continue;
    let previous: Phase | undefined;
    for (const idlePhase of phases.filter((p) => p.runner === runner && p.kind === 'idle')) {
      const n = idlePhase.clusters;
      const idle = idlePhase.window;
      const marginal = (field: Figure) =>
        previous ? (idle[field] - previous.window[field]) / (n - previous.clusters) : undefined;
      const busy = phases.find((p) => p.runner === runner && p.clusters === n && p.kind === 'busy')?.window;
      const per = (w: Window, field: Figure) => (w[field] - base[field]) / n;
      out.push({
        runner,
        clusters: n,
        idleOperatorRss: per(idle, 'operatorRss'),
        idleOperatorPss: per(idle, 'operatorPss'),
        idleTreeRss: per(idle, 'treeRss'),
        idleTreePss: per(idle, 'treePss'),
        idleOperatorCpu: per(idle, 'operatorCpu'),
        idleTreeCpu: per(idle, 'treeCpu'),
        marginalOperatorRss: marginal('operatorRss'),
        marginalTreeRss: marginal('treeRss'),
        busy: busy && { treeRss: per(busy, 'treeRss'), operatorCpu: per(busy, 'operatorCpu'), treeCpu: per(busy, 'treeCpu') },
      });
      previous = idlePhase;
    }
  }
  return out;
}

function largestOf(per: PerCluster[], runner: RunnerKind): PerCluster | undefined {
  return per.filter((p) => p.runner === runner).at(-1);
}

function goalRows(per: PerCluster[]): GoalRow[] {
  const rows: GoalRow[] = [];
  const forked = largestOf(per, 'operator');
  if (forked) {
    rows.push(
      {
        goal: `<= 5 MiB operator RSS per idle cluster: operator process alone, default runner (N = ${forked.clusters})`,
        measured: `${mib(forked.idleOperatorRss)} MiB`,
        met: forked.idleOperatorRss <= GOAL_BYTES,
      },
      {
        goal: `<= 5 MiB operator RSS per idle cluster: operator + forked workers, default runner (N = ${forked.clusters})`,
        measured: `${mib(forked.idleTreeRss)} MiB (PSS ${mib(forked.idleTreePss)})`,
        met: forked.idleTreeRss <= GOAL_BYTES,
      },
    );
  }
  const pod = largestOf(per, 'pod');
  if (pod) {
    rows.push({
      goal: `<= 5 MiB operator RSS per idle cluster: runner: pod, operator process (Deployments not run) (N = ${pod.clusters})`,
      measured: `${mib(pod.idleOperatorRss)} MiB`,
      met: pod.idleOperatorRss <= GOAL_BYTES,
    });
  }
  return rows;
}

function pct(value: number): string {
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

async function charts(per: PerCluster[]): Promise<string> {
  const forked = per.filter((p) => p.runner === 'operator');
  const pod = per.filter((p) => p.runner === 'pod');
  const categories = forked.map((p) => `N = ${p.clusters}`);
  const podValues = forked.map((f) => pod.find((p) => p.clusters === f.clusters)?.idleOperatorRss ?? Number.NaN);
  const memoryTitle = 'Many clusters: memory per idle cluster (minus the 0-cluster baseline)';
  const cpuTitle = 'Many clusters: CPU per cluster, operator + workers, default runner (minus the baseline)';
  return [
    await writeChart(
      `${SECTION}-memory`,
      memoryTitle,
      barChartSvg({
        title: memoryTitle,
        yLabel: 'MiB per cluster',
        categories,
        series: [
          { name: 'default runner: operator process RSS', values: forked.map((p) => p.idleOperatorRss / MiB) },
          { name: 'default runner: operator + workers RSS', values: forked.map((p) => p.idleTreeRss / MiB) },
          { name: 'default runner: operator + workers PSS', values: forked.map((p) => p.idleTreePss / MiB) },
          ...(pod.length ? [{ name: 'runner: pod: operator process RSS', values: podValues.map((v) => v / MiB) }] : []),
        ],
        goal: { value: GOAL_BYTES / MiB, label: 'goal 5 MiB' },
      }),
    ),
    await writeChart(
      `${SECTION}-cpu`,
      cpuTitle,
      barChartSvg({
        title: cpuTitle,
        yLabel: '% of one core per cluster',
        categories,
        series: [
          { name: 'idle', values: forked.map((p) => p.idleTreeCpu) },
          { name: 'busy (100 puts/s of 1 kB)', values: forked.map((p) => p.busy?.treeCpu ?? Number.NaN) },
        ],
      }),
    ),
  ].join('\n');
}

function report(
  phases: Phase[],
  per: PerCluster[],
  timing: Timing,
  meta: { commit: string; warnings?: string; podRunner: boolean; charts: string },
): string {
  const measuredTable = markdownTable(
    [
      { title: 'runner' },
      { title: 'clusters', align: 'right' },
      { title: 'phase' },
      { title: 'operator RSS MiB', align: 'right' },
      { title: 'operator+workers RSS MiB', align: 'right' },
      { title: 'operator+workers PSS MiB', align: 'right' },
      { title: 'processes', align: 'right' },
      { title: 'operator CPU %', align: 'right' },
      { title: 'operator+workers CPU %', align: 'right' },
      { title: 'puts/s (all etcds)', align: 'right' },
    ],
    phases.map((p) => [
      p.runner === 'pod' ? 'pod' : 'default',
      String(p.clusters),
      p.kind,
      mib(p.window.operatorRss),
      mib(p.window.treeRss),
      mib(p.window.treePss),
      String(p.window.processes),
      pct(p.window.operatorCpu),
      pct(p.window.treeCpu),
      p.putsPerSecond === undefined ? '-' : `${p.putsPerSecond.toFixed(0)}${p.failedPuts ? ` (${p.failedPuts} failed)` : ''}`,
    ]),
  );
  const forked = per.filter((p) => p.runner === 'operator');
  const pod = per.filter((p) => p.runner === 'pod');
  const forkedTable = markdownTable(
    [
      { title: 'clusters', align: 'right' },
      { title: 'idle: operator RSS MiB', align: 'right' },
      { title: 'idle: operator+workers RSS MiB', align: 'right' },
      { title: 'idle: operator+workers PSS MiB', align: 'right' },
      { title: 'idle, marginal: operator RSS MiB', align: 'right' },
      { title: 'idle, marginal: operator+workers RSS MiB', align: 'right' },
      { title: 'busy: operator+workers RSS MiB', align: 'right' },
      { title: 'idle: operator CPU %', align: 'right' },
      { title: 'idle: operator+workers CPU %', align: 'right' },
      { title: 'busy: operator CPU %', align: 'right' },
      { title: 'busy: operator+workers CPU %', align: 'right' },
    ],
    forked.map((p) => [
      String(p.clusters),
      mib(p.idleOperatorRss),
      mib(p.idleTreeRss),
      mib(p.idleTreePss),
      p.marginalOperatorRss === undefined ? '-' : mib(p.marginalOperatorRss),
      p.marginalTreeRss === undefined ? '-' : mib(p.marginalTreeRss),
      p.busy ? mib(p.busy.treeRss) : '-',
      pct(p.idleOperatorCpu),
      pct(p.idleTreeCpu),
      p.busy ? pct(p.busy.operatorCpu) : '-',
      p.busy ? pct(p.busy.treeCpu) : '-',
    ]),
  );
  const podTable = markdownTable(
    [
      { title: 'clusters', align: 'right' },
      { title: 'idle: operator RSS MiB', align: 'right' },
      { title: 'idle: operator PSS MiB', align: 'right' },
      { title: 'idle, marginal: operator RSS MiB', align: 'right' },
      { title: 'idle: operator CPU %', align: 'right' },
    ],
    pod.map((p) => [
      String(p.clusters),
      mib(p.idleOperatorRss),
      mib(p.idleOperatorPss),
      p.marginalOperatorRss === undefined ? '-' : mib(p.marginalOperatorRss),
      pct(p.idleOperatorCpu),
    ]),
  );
  const largest = largestOf(per, 'operator')!;
  const largestPod = largestOf(per, 'pod');
  const verdict = (value: number) => (value <= GOAL_BYTES ? 'meets' : 'misses');
  const baselines = phases.filter((p) => p.kind === 'baseline');
  const baselineCpu = baselines
    .map((p) => {
      const [a, b] = p.window.operatorCpuHalves.map(pct);
      return `- ${p.runner === 'pod' ? 'runner: pod series' : 'default-runner series'}: ${pct(p.window.operatorCpu)} % (${a} % and ${b} % in the two halves of the window)`;
    })
    .join('\n');
  const anyNegative = per.some((p) => p.idleOperatorCpu < -0.005 || (p.busy?.operatorCpu ?? 0) < -0.005);
  const podSection = largestPod
    ? `**runner: pod** (a second operator, started fresh on its own namespace with its own 0-cluster baseline; the same
etcds, each EtcdBackup with \`spec.runner: pod\` and an S3 store on an s3rver in the bench process, since runner: pod
needs one). The operator creates a worker Deployment and ConfigMap per cluster and reads each cluster's status
from its store every 30 s. **Nothing runs those Deployments: the API test server has no kubelet**, so no worker
process exists and the stores stay empty; these rows are the operator's own cost per cluster (idle only: writes
to etcd reach no process of ours here). The first cluster also loads the AWS SDK into the operator (a one-off,
which is why N = 1 is high).

${podTable}`
    : meta.podRunner
      ? '**runner: pod** was skipped in this run (--no-pod).'
      : '**runner: pod** is not measured: it was not in the compiled commit.';
  return `## Many clusters under one operator (\`bench/many-clusters.ts\`)

Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}, CLI built from \`${meta.commit}\`, on a 2-core VM shared with other
work (CPU figures are noisy; memory figures less so). One Kubernetes API test server (test/harness, in the bench
process) and one operator process, the compiled CLI as the image runs it
(\`node --max-semi-space-size=1 dist/cli/main.js operator\`). Clusters are local etcd 3.4 servers on 127.0.0.1
(256 MiB quota). Each EtcdBackup has the config/samples local spec (budget 128Mi, chunkParallelism 4, gzip) with a
full-snapshot schedule that does not fire in the run, so each cluster's one full snapshot is the one taken at
start; deltas are polled every 20 s (the default).${meta.warnings ? `\n(tsc reported errors; the emitted CLI was measured: ${meta.warnings})` : ''}

**Default runner** (one forked worker process per EtcdBackup, each backing up to its own local directory). Phases,
all against the same operator: **baseline** with 0 EtcdBackups (after ${timing.startupSettleMs / 1000} s of start-up), then for each size N
(clusters added to the same operator: ${forked.map((p) => p.clusters).join(', ')}) **idle** (all Ready, ${timing.settleMs / 1000} s settle, no writes, ${timing.idleWindowMs / 1000} s window)
and **busy** (every etcd takes ${timing.putsPerSecond} puts/s of ${timing.valueBytes} B for ${timing.busyWindowMs / 1000} s, written by the bench process; the window is
the write time, so each cluster polls about once in it). Memory is the median of 1-second samples of VmRSS, and
of Pss (shared pages split between the processes that map them), of the operator process and summed over its
process tree (operator + workers). CPU is utime + stime over the window, in percent of one core.

Measured per phase:

${measuredTable}

Default runner, per cluster, minus the baseline, (X(N) - X(0)) / N; "marginal" is what each cluster added since the
previous size, (X(N) - X(N_prev)) / (N - N_prev), in which one-off costs of the first cluster drop out:

${forkedTable}

${podSection}

${meta.charts || 'No charts (run without --no-docs to write them).'}

CPU, with 0 EtcdBackups, of the operator process alone (Lease renewals, informers, timers, GC):
${baselineCpu}

The operator's own CPU per cluster is a few hundredths of a percent of one core, the same order as its variation
between windows on this shared machine, so read it as an order of magnitude${anyNegative ? ' (negative figures are that noise)' : ''}.
The workers' CPU is the clear part: operator+workers per busy cluster against per idle cluster.

Goal "<= 5 MiB operator RSS per idle cluster", read at the largest N (at N = 1 the figure also holds one-off
costs, such as code the operator loads when its first EtcdBackup arrives; the marginal column leaves them out):
- **Default runner, operator process alone: ${mib(largest.idleOperatorRss)} MiB per idle cluster (N = ${largest.clusters}), ${verdict(largest.idleOperatorRss)} the goal.** This is
  what the operator itself holds per EtcdBackup: the informer's cached object, queue key, status bookkeeping,
  metrics series, and the worker's ChildProcess handle and IPC channel.
- **Default runner, operator + workers: ${mib(largest.idleTreeRss)} MiB RSS (${mib(largest.idleTreePss)} MiB PSS) per idle cluster, ${verdict(largest.idleTreeRss)} the goal.**
  Each worker is a whole Node process (V8 heap, the etcd3/gRPC client, the store), so with the default runner an
  idle cluster costs tens of MiB. PSS is lower than RSS because the workers share the node binary's and
  libraries' pages; PSS is the fairer figure for what N workers cost the machine.
${
  largestPod
    ? `- **runner: pod, operator process: ${mib(largestPod.idleOperatorRss)} MiB per idle cluster (N = ${largestPod.clusters}), ${verdict(largestPod.idleOperatorRss)} the goal**, with the
  worker's memory moved to its own pod (not run here; a worker pod's own RSS is like one forked worker's above).`
    : '- runner: pod: not measured in this run.'
}

Re-run: \`node --import tsx bench/many-clusters.ts\` (about 6 minutes; \`--quick\` for sizes 1 and 3 with short
windows, \`--sizes 1,5\` for other sizes, \`--no-pod\` without the runner: pod series). It rewrites only this
section, its two charts and its goal rows.`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-pod': { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
    },
  });
  const timing = values.quick ? QUICK : FULL;
  const sizes = (values.sizes ?? (values.quick ? '1,3' : '1,10,20')).split(',').map(Number);
  if (sizes.some((n, i) => !Number.isInteger(n) || n < 1 || (i > 0 && n <= sizes[i - 1]!))) {
    throw new Error('--sizes: increasing positive integers, e.g. 1,10,20');
  }

  const work = await mkdtemp(join(tmpdir(), 'bench-many-clusters-'));
  onCleanup('temp dir', () => rm(work, { recursive: true, force: true }));
  log(`work dir ${work}; sizes ${sizes.join(', ')}`);

  const cli = await buildCli(repo, join(work, 'build'));
  log(`built the CLI from ${cli.commit}${cli.warnings ? ` (tsc warnings: ${cli.warnings})` : ''}`);
  const podRunner = existsSync(join(dirname(cli.mainJs), '..', 'controller', 'pod-runner.js'));

  const api = await startKubeApiServer();
  onCleanup('API server', () => api.stop());
  const kubeconfig = await writeKubeconfig(work, api.url);
  const kc = kubeConfigFor(api.url);
  const co = kc.makeApiClient(CustomObjectsApi);
  await kubectl(kubeconfig, ['apply', '-f', join(repo, 'crds/')]);

  const phases: Phase[] = [];
  const record = (phase: Phase) => {
    phases.push(phase);
    const w = phase.window;
    log(
      `runner ${phase.runner}, N=${phase.clusters} ${phase.kind}: operator RSS ${mib(w.operatorRss)} MiB, tree RSS ${mib(w.treeRss)} MiB ` +
        `(PSS ${mib(w.treePss)}, ${w.processes} processes), CPU operator ${pct(w.operatorCpu)} %, tree ${pct(w.treeCpu)} %` +
        (phase.putsPerSecond === undefined ? '' : `, ${phase.putsPerSecond.toFixed(0)} puts/s, ${phase.failedPuts} failed`),
    );
  };
  const startLeading = async (namespace: string) => {
    const operator = await startOperator(cli.mainJs, kubeconfig, work, namespace);
    await operator.waitForLine('Started EtcdBackup controller', 60_000);
    log(`operator pid ${operator.pid} (namespace ${namespace}) is leading; settling`);
    await sleep(timing.startupSettleMs);
    return operator;
  };

  // Series 1: the default runner, a forked worker per EtcdBackup.
  const operator = await startLeading(NS);
  record({ runner: 'operator', clusters: 0, kind: 'baseline', window: await measure(operator.pid, timing.idleWindowMs) });
  const clusters: Cluster[] = [];
  for (const n of sizes) {
    const added = clusters.length;
    // Start the missing etcds a few at a time (2 cores), then their EtcdBackups.
    while (clusters.length < n) {
      const batch = Array.from({ length: Math.min(5, n - clusters.length) }, (_, i) => startCluster(work, clusters.length + i));
      clusters.push(...(await Promise.all(batch)));
    }
    for (const cluster of clusters.slice(added)) {
      const storeDir = join(work, 'stores', cluster.name);
      await mkdir(storeDir, { recursive: true });
      await co.createNamespacedCustomObject({ ...CR, namespace: NS, body: backupFor(cluster, storeDir) });
    }
    await waitAllReady(co, n, 60_000 + n * 10_000);
    log(`${n} EtcdBackups Ready; settling`);
    await sleep(timing.settleMs);
    record({ runner: 'operator', clusters: n, kind: 'idle', window: await measure(operator.pid, timing.idleWindowMs) });

    const [window, load] = await Promise.all([
      measure(operator.pid, timing.busyWindowMs),
      writeLoad(clusters, timing.putsPerSecond, timing.valueBytes, timing.busyWindowMs),
    ]);
    record({ runner: 'operator', clusters: n, kind: 'busy', window, putsPerSecond: load.puts / window.seconds, failedPuts: load.failed });
  }
  await operator.stop();

  // Series 2: runner: pod, a second operator on its own namespace. Nothing runs the Deployments (no
  // kubelet), so this is the operator's own cost: the Deployment and ConfigMap it owns and the status
  // it reads from each cluster's store every 30 s.
  if (podRunner && !values['no-pod']) {
    const s3 = await startTestS3();
    onCleanup('S3 server', () => s3.stop());
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: POD_NS } } }).catch(() => undefined);
    await core.createNamespacedSecret({
      namespace: POD_NS,
      body: { metadata: { name: 's3-credentials' }, stringData: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
    });
    const podOperator = await startLeading(POD_NS);
    record({ runner: 'pod', clusters: 0, kind: 'baseline', window: await measure(podOperator.pid, timing.idleWindowMs) });
    let added = 0;
    for (const n of sizes) {
      for (const cluster of clusters.slice(added, n)) {
        await co.createNamespacedCustomObject({ ...CR, namespace: POD_NS, body: podBackupFor(cluster, s3) });
      }
      added = n;
      await waitPodRunners(co, apps, n, 60_000 + n * 5_000);
      log(`${n} worker Deployments created and statuses written; settling`);
      await sleep(timing.settleMs);
      record({ runner: 'pod', clusters: n, kind: 'idle', window: await measure(podOperator.pid, timing.idleWindowMs) });
    }
    await podOperator.stop();
  } else {
    log(podRunner ? 'runner: pod skipped (--no-pod)' : 'runner: pod is not in this build; not measured');
  }

  const per = perClusterFigures(phases);
  const write = !values['no-docs'];
  const body = report(phases, per, timing, { ...cli, podRunner, charts: write ? await charts(per) : '' });
  console.log(`\n${body}\n`);
  if (write) {
    await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, body);
    await recordGoals(SECTION, goalRows(per));
    log(`wrote docs/benchmarks.md section ${SECTION}, its charts and goal rows`);
  }
}

/** runner: pod: `count` worker Deployments exist and every EtcdBackup has a status. */
async function waitPodRunners(co: CustomObjectsApi, apps: AppsV1Api, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const deployments = (await apps.listNamespacedDeployment({ namespace: POD_NS })).items.length;
    const list = (await co.listNamespacedCustomObject({ ...CR, namespace: POD_NS })) as { items: EtcdBackup[] };
    const withStatus = list.items.filter((o) => (o.status?.conditions?.length ?? 0) > 0).length;
    if (deployments >= count && withStatus >= count) return;
    if (Date.now() > deadline) {
      throw new Error(`runner: pod: ${deployments}/${count} Deployments, ${withStatus}/${count} statuses after ${timeoutMs / 1000} s`);
    }
    await sleep(1000);
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
