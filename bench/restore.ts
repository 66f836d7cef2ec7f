/**
 * Restore speed: revisions/s that replayDeltas (pipelined txns + prefetch) replays, against a naive
 * replay (one request per event, each awaited, objects downloaded one after another), on the same
 * delta archive in one run.
 *
 *   node --import tsx bench/restore.ts [--revisions 100000] [--depth N] [--sweep-revisions 10000]
 *                                      [--sweep-depths 1,16,64,256] [--large-revisions 0] [--no-naive] [--no-write]
 *
 * For each row (small values; 1 KiB values when --large-revisions > 0): starts a source etcd
 * (127.0.0.1, temp dir), saves a base snapshot with etcdctl, writes the revisions with 128 writers
 * (puts over 10k keys, about 10% single-key deletes), and archives them with the real DeltaPoller
 * into a LocalStore (gzip objects of 1000 revisions). Then, for each method, restores the base
 * snapshot with etcdctl into a fresh data dir, starts it as restore does (startMember) and times
 * only the replay: replayDeltas at --depth (default: the shipped DEFAULT_PIPELINE_DEPTH) and the
 * naive replay over all revisions, then a depth sweep over the first --sweep-revisions revisions
 * (how the default depth was chosen). Every replayDeltas run is checked against the source: same
 * head revision and every key's value, create/mod revision and version. Rewrites its section of
 * docs/benchmarks.md and its goal rows. About 4-5 minutes on 2 busy cores.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { decodeDeltaEvents, groupByRevision } from '../src/archive/delta-format.js';
import { DeltaPoller } from '../src/engine/delta-poller.js';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import { createEtcdClient, headRevision } from '../src/etcd/client.js';
import { ETCDCTL_BINARY, freePort, startLocalEtcd, type LocalEtcd } from '../src/etcd/local-etcd.js';
import { silentLogger } from '../src/observability/logger.js';
import { planDeltas, replayDeltas } from '../src/restore/delta-replay.js';
import { DEFAULT_PIPELINE_DEPTH } from '../src/restore/txn-pipeline.js';
import { startMember } from '../src/restore/restore.js';
import { LocalStore } from '../src/store/local-store.js';
import { DELTA_DIR, classifyKeys, fullSnapshotKey, type DeltaName } from '../src/archive/naming.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals, type GoalRow } from './lib/goals.js';
import { barChartSvg, writeChart } from './lib/svg-chart.js';
import { markdownTable } from './lib/table.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECTION = 'restore';
const MiB = 1024 * 1024;
const KEYS = 10_000;
const WRITERS = 128;
const GOAL_RATE = 20_000;
const GOAL_RATIO = 5;

interface Archive {
  label: string;
  valueBytes: number;
  store: LocalStore;
  snapshotFile: string;
  baseRevision: number;
  head: number;
  deltas: DeltaName[];
  source: LocalEtcd;
  sourceClient: Etcd3;
  writeSeconds: number;
  archiveSeconds: number;
}

interface Measured {
  method: string;
  revisions: number;
  seconds: number;
  rate: number;
  exact?: boolean;
  resent?: number;
  drains?: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      revisions: { type: 'string', default: '100000' },
      depth: { type: 'string', default: String(DEFAULT_PIPELINE_DEPTH) },
      'sweep-revisions': { type: 'string', default: '10000' },
      'sweep-depths': { type: 'string', default: '1,16,64,256' },
      'large-revisions': { type: 'string', default: '0' },
      'no-naive': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const revisions = Number(values.revisions);
  const largeRevisions = Number(values['large-revisions']);
  const depth = Number(values.depth);
  const sweepRevisions = Math.min(Number(values['sweep-revisions']), revisions);
  const sweepDepths = values['sweep-depths'].split(',').filter(Boolean).map(Number);
  if (
    !(revisions > 0) || !(largeRevisions >= 0) || !(sweepRevisions >= 0) ||
    ![depth, ...sweepDepths].every((d) => Number.isSafeInteger(d) && d > 0)
  ) {
    throw new Error('--revisions must be positive, --large-revisions and --sweep-revisions >= 0, depths positive integers');
  }
  const root = await mkdtemp(join(tmpdir(), 'restore-bench-'));
  const members: LocalEtcd[] = [];
  const cleanup = async (): Promise<void> => {
    for (const member of members.splice(0)) await member.stop().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  };
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const load = [loadavg()[0] ?? 0];
  const rows: { archive: Omit<Archive, 'source' | 'sourceClient' | 'store'>; results: Measured[] }[] = [];
  const sweep: Measured[] = [];
  try {
    const sizes: [string, number, number][] = [['small values (32 B)', 32, revisions]];
    if (largeRevisions > 0) sizes.push(['1 KiB values', 1024, largeRevisions]);
    for (const [label, valueBytes, count] of sizes) {
      const archive = await buildArchive(root, label, valueBytes, count, members);
      const results: Measured[] = [];
      const all = archive.head;
      results.push(await measure(root, archive, members, `replayDeltas, ${depth} txn${depth === 1 ? '' : 's'} in flight`, all, (client) => ours(client, archive, depth, all)));
      if (!values['no-naive']) {
        results.push(await measure(root, archive, members, 'naive (one request per event)', all, (client) => naive(client, archive)));
      }
      if (valueBytes <= 64 && sweepRevisions > 0) {
        const to = archive.baseRevision + sweepRevisions;
        for (const d of sweepDepths) {
          sweep.push(await measure(root, archive, members, `${d}`, to, (client) => ours(client, archive, d, to)));
        }
      }
      archive.sourceClient.close();
      await archive.source.stop();
      members.splice(members.indexOf(archive.source), 1);
      rows.push({ archive, results });
    }
    load.push(loadavg()[0] ?? 0);
    const report = await formatReport(rows, sweep, load, !values['no-write']);
    console.log('\n' + report.markdown);
    if (!values['no-write']) {
      await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, report.markdown);
      await recordGoals(SECTION, report.goals);
      log(`wrote the ${SECTION} section of docs/benchmarks.md`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

/** A source etcd with `count` revisions after a base snapshot, archived as deltas by the real poller. */
async function buildArchive(root: string, label: string, valueBytes: number, count: number, members: LocalEtcd[]): Promise<Archive> {
  const dir = await mkdtemp(join(root, 'source-'));
  const source = await startLocalEtcd({ dataDir: join(dir, 'data'), extraArgs: ['--quota-backend-bytes', String(8 * 1024 ** 3)] });
  members.push(source);
  const client = createEtcdClient({ endpoints: [source.clientUrl] });
  // The base snapshot holds one key, so its revision is past etcd's initial one.
  await client.put('bench/base').value('base');
  const snapshotFile = join(dir, 'base.db');
  await run(ETCDCTL_BINARY, ['--endpoints', source.clientUrl, 'snapshot', 'save', snapshotFile]);
  const { stdout } = await run(ETCDCTL_BINARY, ['snapshot', 'status', snapshotFile, '-w', 'json']);
  const baseRevision = (JSON.parse(stdout) as { revision: number }).revision;
  const store = new LocalStore(join(dir, 'store'));
  await store.put(fullSnapshotKey(baseRevision, new Date(), { compression: 'none', encrypted: false }), createReadStream(snapshotFile));

  const writeStarted = process.hrtime.bigint();
  const target = baseRevision + count;
  let next = 0;
  const value = Buffer.alloc(valueBytes, 'v');
  const key = (i: number): string => `bench/k${String(i % KEYS).padStart(5, '0')}`;
  // A delete of a missing key makes no revision: write until the head reaches the target.
  const writer = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      const response = i % 10 === 9 && i > KEYS
        ? await client.kv.deleteRange({ key: Buffer.from(key(i * 7919)) })
        : await client.kv.put({ key: Buffer.from(key(i)), value });
      if (Number(response.header.revision) >= target) return;
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  const writeSeconds = seconds(writeStarted);
  const head = await headRevision(client);
  log(`${label}: wrote ${head - baseRevision} revisions in ${writeSeconds.toFixed(1)} s`);

  const archiveStarted = process.hrtime.bigint();
  const poller = new DeltaPoller({
    client,
    store,
    budget: new MemoryBudget(64 * MiB),
    periodMs: 1000,
    chunkRevisions: 1000,
    parallelism: 4,
    compression: 'gzip',
    logger: silentLogger(),
  });
  await poller.start();
  while ((await poller.pollOnce()).archivedRevision < head) {
    /* pollOnce archives what it can; repeat until the head is in */
  }
  await poller.stop();
  const archiveSeconds = seconds(archiveStarted);
  const deltas = classifyKeys((await store.list(DELTA_DIR)).map((o) => o.key)).deltas;
  log(`${label}: archived into ${deltas.length} delta objects in ${archiveSeconds.toFixed(1)} s`);
  return { label, valueBytes, store, snapshotFile, baseRevision, head, deltas, source, sourceClient: client, writeSeconds, archiveSeconds };
}

/** Restores the base snapshot into a fresh member and times `replay` on it. */
async function measure(
  root: string,
  archive: Archive,
  members: LocalEtcd[],
  method: string,
  toRevision: number,
  replay: (client: Etcd3) => Promise<Partial<Measured>>,
): Promise<Measured> {
  const dir = await mkdtemp(join(root, 'restore-'));
  const dataDir = join(dir, 'data');
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  await run(ETCDCTL_BINARY, [
    'snapshot', 'restore', archive.snapshotFile,
    '--data-dir', dataDir, '--name', 'bench',
    '--initial-cluster', `bench=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster-token', 'restore-bench',
  ], { env: { ...process.env, ETCDCTL_API: '3' } });
  const member = await startMember(dataDir, 'bench', dir);
  members.push(member);
  const client = createEtcdClient({ endpoints: [member.clientUrl], callTimeoutMs: 60_000 });
  try {
    const started = process.hrtime.bigint();
    const extra = await replay(client);
    const elapsed = seconds(started);
    const revisions = toRevision - archive.baseRevision;
    const result: Measured = { method, revisions, seconds: elapsed, rate: revisions / elapsed, ...extra };
    if (result.exact !== undefined) result.exact = await sameState(archive.sourceClient, client, toRevision);
    log(
      `${archive.label}, ${method}: ${elapsed.toFixed(2)} s, ${Math.round(result.rate)} revisions/s` +
        (result.exact === undefined ? '' : `, exact ${result.exact}, resent ${result.resent}, drains ${result.drains}`),
    );
    return result;
  } finally {
    client.close();
    await member.stop();
    members.splice(members.indexOf(member), 1);
    await rm(dir, { recursive: true, force: true });
  }
}

async function ours(client: Etcd3, archive: Archive, depth: number, toRevision: number): Promise<Partial<Measured>> {
  const result = await replayDeltas({
    client,
    store: archive.store,
    deltas: archive.deltas,
    afterRevision: archive.baseRevision,
    toRevision,
    logger: silentLogger(),
    pipelineDepth: depth,
  });
  if (result.revision !== toRevision) throw new Error(`replay stopped at ${result.revision}, not ${toRevision}`);
  return { exact: false, resent: result.pipeline.resent, drains: result.pipeline.drains };
}

/**
 * The baseline: every object downloaded to a file and verified, then each event sent as its own
 * request and awaited before the next (what a straightforward replay does). Exact here only because
 * this workload has one event per revision.
 */
async function naive(client: Etcd3, archive: Archive): Promise<Partial<Measured>> {
  const spool = await mkdtemp(join(tmpdir(), 'restore-bench-naive-'));
  try {
    for (const delta of planDeltas(archive.deltas, archive.baseRevision, archive.head)) {
      const file = join(spool, 'object');
      await pipeline((await archive.store.get(delta.key)).body, createWriteStream(file));
      for await (const revision of groupByRevision(decodeDeltaEvents(createReadStream(file), delta.compression, delta.key))) {
        for (const event of revision.events) {
          if (event.type === 'PUT') await client.kv.put({ key: event.key, value: event.value });
          else await client.kv.deleteRange({ key: event.key });
        }
      }
    }
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
  return {};
}

/** Same head revision and, for every key, the same value, create/mod revision and version. */
async function sameState(source: Etcd3, restored: Etcd3, revision: number): Promise<boolean> {
  if ((await headRevision(restored)) !== revision) return false;
  const digest = async (client: Etcd3, at?: number): Promise<string> => {
    const all = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
    const response = await client.kv.range({ ...all, ...(at ? { revision: String(at) } : {}) });
    const hash = createHash('sha256');
    for (const kv of response.kvs) hash.update(`${kv.key.toString('hex')} ${kv.value.toString('hex')} ${kv.create_revision} ${kv.mod_revision} ${kv.version}\n`);
    return `${response.kvs.length}:${hash.digest('hex')}`;
  };
  return (await digest(source, revision)) === (await digest(restored));
}

async function formatReport(
  rows: { archive: Omit<Archive, 'source' | 'sourceClient' | 'store'>; results: Measured[] }[],
  sweep: Measured[],
  load: number[],
  writeSvg: boolean,
): Promise<{ markdown: string; goals: GoalRow[] }> {
  const goals: GoalRow[] = [];
  const lines: string[] = [
    '## Restore: delta replay speed',
    '',
    `Measured with \`node --import tsx bench/restore.ts\` on ${new Date().toISOString().slice(0, 10)}, ` +
      `${cpus().length} CPUs, load average ${load.map((l) => l.toFixed(1)).join(' -> ')} ` +
      '(the machine was shared with other work while this ran; `npm run bench` re-measures).',
    '',
    'Each row replays the same delta archive (written by the DeltaPoller as gzip objects of 1000 revisions) into ' +
      'a fresh etcd restored from the base snapshot and started as `restore` starts it; only the replay is timed. ' +
      '`replayDeltas` sends one txn per source revision, N in flight (more than one: each guarded by a compare on ' +
      'its predecessor, see docs/architecture.md), with delta objects prefetched within 64 MiB; "naive" downloads ' +
      'one object at a time and sends each event as its own request, awaiting it. The workload (puts over 10k keys, ' +
      'about 10% single-key deletes) has one event per revision, so the naive replay is exact here too. ' +
      '"exact" = same head revision and every key\'s value, create/mod revision and version as the source. ' +
      '"resent" = txns that overtook their predecessor and were sent again; "drains" = waits for the pipeline ' +
      'to empty (before a revision that follows a deletion-only one, or after a txn was overtaken three times). ' +
      'Why more txns in flight are slower here: docs/architecture.md, Restore.',
    '',
  ];
  const chartCategories: string[] = [];
  const chartSeries = new Map<string, number[]>();
  for (const { archive, results } of rows) {
    const naiveResult = results.find((r) => r.method.startsWith('naive'));
    const best = results.filter((r) => r.exact !== undefined).sort((a, b) => b.rate - a.rate)[0]!;
    lines.push(
      `### ${archive.label}: ${archive.head - archive.baseRevision} revisions, ${archive.deltas.length} objects`,
      '',
      `(source written in ${archive.writeSeconds.toFixed(1)} s by ${WRITERS} writers; archived in ${archive.archiveSeconds.toFixed(1)} s)`,
      '',
      markdownTable(
        [
          { title: 'method' },
          { title: 'seconds', align: 'right' },
          { title: 'revisions/s', align: 'right' },
          { title: 'vs naive', align: 'right' },
          { title: 'exact' },
          { title: 'resent', align: 'right' },
          { title: 'drains', align: 'right' },
        ],
        results.map((r) => [
          r.method,
          r.seconds.toFixed(2),
          String(Math.round(r.rate)),
          naiveResult ? `${(r.rate / naiveResult.rate).toFixed(1)}x` : '-',
          r.exact === undefined ? '-' : r.exact ? 'yes' : 'NO',
          r.resent === undefined ? '-' : String(r.resent),
          r.drains === undefined ? '-' : String(r.drains),
        ]),
      ),
      '',
    );
    chartCategories.push(archive.label);
    for (const r of results) {
      const values = chartSeries.get(r.method) ?? Array<number>(rows.length).fill(Number.NaN);
      values[chartCategories.length - 1] = r.rate;
      chartSeries.set(r.method, values);
    }
    if (archive.valueBytes <= 64) {
      goals.push({ goal: `restore >= ${GOAL_RATE} revisions/s, small values`, measured: `${Math.round(best.rate)}/s (${best.method})`, met: best.rate >= GOAL_RATE && best.exact === true });
      if (naiveResult) {
        const ratio = best.rate / naiveResult.rate;
        goals.push({ goal: `restore >= ${GOAL_RATIO}x the naive replay`, measured: `${ratio.toFixed(1)}x`, met: ratio >= GOAL_RATIO && best.exact === true });
      }
    }
  }
  if (sweep.length > 0) {
    lines.push(
      `### Pipeline depth: the first ${sweep[0]!.revisions} revisions of the small-values archive`,
      '',
      'How the default depth (`DEFAULT_PIPELINE_DEPTH` in src/restore/txn-pipeline.ts) was chosen; depth 1 is one txn ' +
        'at a time (no compare needed), still with the prefetch.',
      '',
      markdownTable(
        [
          { title: 'txns in flight' },
          { title: 'seconds', align: 'right' },
          { title: 'revisions/s', align: 'right' },
          { title: 'exact' },
          { title: 'resent', align: 'right' },
          { title: 'drains', align: 'right' },
        ],
        sweep.map((r) => [
          r.method,
          r.seconds.toFixed(2),
          String(Math.round(r.rate)),
          r.exact ? 'yes' : 'NO',
          String(r.resent ?? '-'),
          String(r.drains ?? '-'),
        ]),
      ),
      '',
    );
  }
  lines.push(
    ...goals.map((g) => `- Goal "${g.goal}": measured ${g.measured}: ${g.met ? '**met**' : '**not met**'}.`),
    '',
  );
  if (writeSvg) {
    const title = 'Delta replay speed (revisions/s, higher is better)';
    const svg = barChartSvg({
      title,
      yLabel: 'revisions/s',
      categories: chartCategories,
      series: [...chartSeries].map(([name, values]) => ({ name, values })),
      goal: { value: GOAL_RATE, label: `goal ${GOAL_RATE}/s` },
    });
    lines.push(await writeChart('restore-rate', title, svg), '');
  }
  return { markdown: lines.join('\n'), goals };
}

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function log(message: string): void {
  console.error(`[restore-bench] ${message}`);
}

await main();
