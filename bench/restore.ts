/**
 * Restore speed and memory, per etcd version, in one run:
 *
 *   node --import tsx bench/restore.ts [--versions 3.4,3.5,3.6] [--revisions 20000] [--cap 5000]
 *                                      [--depth 16] [--big-puts 1000] [--naive-revisions 5000] [--no-write]
 *
 * For each etcd version (3.4 is Debian's on PATH; 3.5 and 3.6 from .tools/, skipped when not built):
 * - a source etcd of that version gets `--revisions` small-value revisions (128 writers, puts over 10k
 *   keys, about 10% single-key deletes) after a base full snapshot, archived by the real DeltaPoller
 *   (gzip objects of 1000 revisions). A second full snapshot is taken `--cap` revisions before the
 *   end, into a copy of the store: that copy is the chain a maxDeltaRevisions bound of `--cap` leaves.
 * - `restoreBackup` (the real restore, with that version's etcd/etcdctl/etcdutl) replays the whole
 *   chain in each configuration: data dir on disk or tmpfs, with or without --unsafe-no-fsync (3.5+),
 *   one txn at a time or `--depth` in flight. Timed: the replay alone (revisions/s) and the whole
 *   restore. Every restored data dir is started and compared with the source: same head revision and
 *   every key's value, create/mod revision and version.
 * - the bounded chain (from the second snapshot) is restored with the default configuration; the
 *   1-hour chain of the issue (1.8M revisions, bound off) and the 1M bound are extrapolated from the
 *   measured rate (not run at that size on this shared machine).
 * - `--big-puts` puts of 1 MiB (random, so compression does not shrink them) after a base snapshot,
 *   archived uncompressed, restored by a separate process (bench/lib/restore-child.ts): the temporary
 *   member's peak RSS over all its runs, its restarts and restore's own peak RSS.
 * On 3.4, also the naive replay (one request per event, awaited) over the first `--naive-revisions`.
 *
 * Rewrites its section of docs/benchmarks.md and its goal rows. About 15 minutes on 2 busy cores with the defaults.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
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
import type { EtcdBinaries } from '../src/etcd/etcd-tools.js';
import { freePort, peakRssBytes, startLocalEtcd, type LocalEtcd } from '../src/etcd/local-etcd.js';
import { silentLogger } from '../src/observability/logger.js';
import { planDeltas } from '../src/restore/delta-replay.js';
import { restoreBackup, startMember, withClient, type RestoreOptions } from '../src/restore/restore.js';
import { LocalStore } from '../src/store/local-store.js';
import { DELTA_DIR, classifyKeys, fullSnapshotKey, type Compression, type DeltaName } from '../src/archive/naming.js';
import { etcdTools, type EtcdMinor } from '../test/harness/test-tools.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals, type GoalRow } from './lib/goals.js';
import { runRestoreChild, type RestoreChildReport } from './lib/restore-child.js';
import { barChartSvg, writeChart } from './lib/svg-chart.js';
import { markdownTable } from './lib/table.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECTION = 'restore';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const KEYS = 10_000;
const WRITERS = 128;
const GOAL_RATE = 5_000;
const GOAL_MEMBER_RSS = GiB;
const HOUR_CHAIN = 1_800_000;
const BOUND = 1_000_000;

interface Version {
  minor: EtcdMinor;
  binaries: EtcdBinaries;
}

interface Source {
  etcd: LocalEtcd;
  client: Etcd3;
  dir: string;
  store: LocalStore;
  baseRevision: number;
  head: number;
}

interface Row {
  config: string;
  revisions: number;
  replaySeconds: number;
  seconds: number;
  exact: boolean;
  onTmpfs: boolean;
  memberPeakRss: number | undefined;
}

interface VersionResult {
  minor: EtcdMinor;
  version: string;
  revisions: number;
  writeSeconds: number;
  rows: Row[];
  bounded?: Row;
  naive?: { revisions: number; seconds: number; oursSeconds: number };
  big?: { puts: number; sourcePeakRss: number | undefined; restarting: RestoreChildReport; notRestarting: RestoreChildReport };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      versions: { type: 'string', default: '3.4,3.5,3.6' },
      revisions: { type: 'string', default: '20000' },
      cap: { type: 'string', default: '5000' },
      depth: { type: 'string', default: '16' },
      'big-puts': { type: 'string', default: '1000' },
      'naive-revisions': { type: 'string', default: '5000' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const revisions = Number(values.revisions);
  const cap = Number(values.cap);
  const depth = Number(values.depth);
  const bigPuts = Number(values['big-puts']);
  const naiveRevisions = Number(values['naive-revisions']);
  if (!(revisions > 0 && cap > 0 && cap < revisions && depth >= 1 && bigPuts >= 0 && naiveRevisions >= 0)) {
    throw new Error('--revisions > --cap > 0, --depth >= 1, --big-puts and --naive-revisions >= 0');
  }
  const versions: Version[] = [];
  for (const minor of values.versions.split(',') as EtcdMinor[]) {
    const tools = etcdTools(minor);
    if (!tools) {
      log(`etcd ${minor} is not built (scripts/install-test-tools.sh): skipped`);
      continue;
    }
    versions.push({ minor, binaries: { etcd: tools.etcd, etcdctl: tools.etcdctl, ...(tools.etcdutl ? { etcdutl: tools.etcdutl } : {}) } });
  }
  const root = await mkdtemp(join(tmpdir(), 'restore-bench-'));
  const load = [loadavg()[0] ?? 0];
  const commit = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo })).stdout.trim();
  const results: VersionResult[] = [];
  try {
    for (const version of versions) results.push(await measureVersion(root, version, { revisions, cap, depth, bigPuts, naiveRevisions }));
    load.push(loadavg()[0] ?? 0);
    const report = await formatReport(results, { load, commit, revisions, cap, depth, writeSvg: !values['no-write'] });
    console.log('\n' + report.markdown);
    if (!values['no-write']) {
      await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, report.markdown);
      await recordGoals(SECTION, report.goals);
      log(`wrote the ${SECTION} section of docs/benchmarks.md`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function measureVersion(
  root: string,
  version: Version,
  settings: { revisions: number; cap: number; depth: number; bigPuts: number; naiveRevisions: number },
): Promise<VersionResult> {
  const { stdout } = await run(version.binaries.etcd, ['--version']);
  const etcdVersion = /etcd Version:\s*(\S+)/.exec(stdout)?.[1] ?? 'unknown';
  log(`etcd ${etcdVersion}`);
  const source = await startSource(root, version, 'small');
  const result: VersionResult = { minor: version.minor, version: etcdVersion, revisions: settings.revisions, writeSeconds: 0, rows: [] };
  try {
    // The chain, with a second full snapshot `cap` revisions before its end in a copy of the store.
    const writeStarted = performance.now();
    await writeSmall(source.client, source.baseRevision + settings.revisions - settings.cap);
    const boundedDir = join(source.dir, 'bounded-store');
    const midRevision = await headRevision(source.client);
    await archive(source, 'gzip');
    await cp(join(source.dir, 'store'), boundedDir, { recursive: true });
    await saveSnapshot(version, source, new LocalStore(boundedDir), midRevision);
    await writeSmall(source.client, source.baseRevision + settings.revisions);
    source.head = await headRevision(source.client);
    result.writeSeconds = (performance.now() - writeStarted) / 1000;
    await archive(source, 'gzip');
    // The bounded store gets the same deltas (the copy holds the ones up to the mid snapshot).
    await cp(join(source.dir, 'store', DELTA_DIR), join(boundedDir, DELTA_DIR), { recursive: true, force: false, errorOnExist: false });
    log(`${version.minor}: ${source.head - source.baseRevision} revisions written and archived`);

    const noFsync = version.minor !== '3.4';
    const configs: Array<[string, Partial<RestoreOptions>]> = [
      ['disk, fsync', { tmpfs: false, unsafeNoFsync: false }],
      ...(noFsync ? [['disk, --unsafe-no-fsync', { tmpfs: false, unsafeNoFsync: true }] as [string, Partial<RestoreOptions>]] : []),
      ['tmpfs, fsync', { tmpfs: true, unsafeNoFsync: false }],
      ...(noFsync ? [['tmpfs, --unsafe-no-fsync (default)', { tmpfs: true, unsafeNoFsync: true }] as [string, Partial<RestoreOptions>]] : []),
      [`default, ${settings.depth} txns in flight`, { pipelineDepth: settings.depth }],
    ];
    if (!noFsync) configs[1]![0] = 'tmpfs (default)';
    for (const [config, options] of configs) {
      result.rows.push(await restoreOnce(root, version, source, source.store, config, options));
    }
    result.bounded = await restoreOnce(root, version, source, new LocalStore(boundedDir), `default, chain capped at ${settings.cap}`, {});
    if (version.minor === '3.4' && settings.naiveRevisions > 0) {
      const to = source.baseRevision + Math.min(settings.naiveRevisions, settings.revisions);
      const naiveSeconds = await naiveReplay(root, version, source, to);
      const ours = result.rows.find((r) => r.config === 'disk, fsync')!;
      result.naive = { revisions: to - source.baseRevision, seconds: naiveSeconds, oursSeconds: (ours.replaySeconds * (to - source.baseRevision)) / ours.revisions };
    }
  } finally {
    source.client.close();
    await source.etcd.stop();
    await rm(source.dir, { recursive: true, force: true });
  }
  if (settings.bigPuts > 0) result.big = await measureBig(root, version, settings.bigPuts);
  return result;
}

/** A source etcd of `version` (8 GiB quota) with one key and a full snapshot of it in its store. */
async function startSource(root: string, version: Version, label: string): Promise<Source> {
  const dir = await mkdtemp(join(root, `source-${version.minor}-${label}-`));
  const etcd = await startLocalEtcd({ dataDir: join(dir, 'data'), binary: version.binaries.etcd, extraArgs: ['--quota-backend-bytes', String(8 * GiB)] });
  const client = createEtcdClient({ endpoints: [etcd.clientUrl], callTimeoutMs: 60_000 });
  await client.put('bench/base').value('base');
  const store = new LocalStore(join(dir, 'store'));
  const source: Source = { etcd, client, dir, store, baseRevision: 0, head: 0 };
  source.baseRevision = await headRevision(client);
  await saveSnapshot(version, source, store, source.baseRevision);
  return source;
}

/** `etcdctl snapshot save` into `store` as a full snapshot at `revision` (nothing writes meanwhile). */
async function saveSnapshot(version: Version, source: Source, store: LocalStore, revision: number): Promise<void> {
  const file = join(source.dir, `full-${revision}.db`);
  await run(version.binaries.etcdctl, ['--endpoints', source.etcd.clientUrl, 'snapshot', 'save', file], { env: { ...process.env, ETCDCTL_API: '3' } });
  await store.put(fullSnapshotKey(revision, new Date(), { compression: 'none', encrypted: false }), createReadStream(file));
  await rm(file);
}

/** Small-value revisions until the head reaches `target`: puts over 10k keys, ~10% single-key deletes. */
async function writeSmall(client: Etcd3, target: number): Promise<void> {
  let next = 0;
  const value = Buffer.alloc(32, 'v');
  const key = (i: number): string => `bench/k${String(i % KEYS).padStart(5, '0')}`;
  const writer = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      // A delete of a missing key makes no revision: write until the head reaches the target.
      const response = i % 10 === 9 && i > KEYS
        ? await client.kv.deleteRange({ key: Buffer.from(key(i * 7919)) })
        : await client.kv.put({ key: Buffer.from(key(i)), value });
      if (Number(response.header.revision) >= target) return;
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
}

/** Archives everything up to the head with the real poller. */
async function archive(source: Source, compression: Compression): Promise<void> {
  const head = await headRevision(source.client);
  const poller = new DeltaPoller({
    client: source.client,
    store: source.store,
    budget: new MemoryBudget(64 * MiB),
    periodMs: 1000,
    chunkRevisions: 1000,
    parallelism: 4,
    compression,
    logger: silentLogger(),
  });
  await poller.start();
  while ((await poller.pollOnce()).archivedRevision < head) {
    /* pollOnce archives what it can; repeat until the head is in */
  }
  await poller.stop();
}

/** One real restore of `store`'s latest state; checked against the source afterwards. */
async function restoreOnce(root: string, version: Version, source: Source, store: LocalStore, config: string, options: Partial<RestoreOptions>): Promise<Row> {
  const dir = await mkdtemp(join(root, 'restore-'));
  try {
    const dataDir = join(dir, 'data');
    const started = performance.now();
    const result = await restoreBackup({ store, dataDir, tools: version.binaries, logger: silentLogger(), ...options });
    const seconds = (performance.now() - started) / 1000;
    const member = await startMember(dataDir, 'default', dir, { etcd: version.binaries.etcd });
    let exact: boolean;
    try {
      exact = await withClient(member, (client) => sameState(source.client, client, source.head));
    } finally {
      await member.stop();
    }
    const row: Row = {
      config,
      revisions: result.revisionsApplied,
      replaySeconds: result.replaySeconds,
      seconds,
      exact,
      onTmpfs: result.temporaryMember.dataDirOnTmpfs,
      memberPeakRss: result.temporaryMember.peakRssBytes,
    };
    log(`${version.minor}, ${config}: ${row.revisions} revisions replayed in ${row.replaySeconds.toFixed(1)} s (${Math.round(row.revisions / row.replaySeconds)}/s), restore ${seconds.toFixed(1)} s, exact ${exact}`);
    return row;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The baseline: every object downloaded to a file, then each event sent as its own request and
 * awaited before the next (what a straightforward replay does), into a member started as restore's.
 */
async function naiveReplay(root: string, version: Version, source: Source, toRevision: number): Promise<number> {
  const dir = await mkdtemp(join(root, 'naive-'));
  try {
    const dataDir = join(dir, 'data');
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    const file = join(dir, 'base.db');
    const full = classifyKeys((await source.store.list('')).map((o) => o.key)).fulls[0]!;
    await pipeline((await source.store.get(full.key)).body, createWriteStream(file));
    await run(version.binaries.etcdctl, [
      'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'default',
      '--initial-cluster', `default=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl,
    ], { env: { ...process.env, ETCDCTL_API: '3' } });
    const member = await startMember(dataDir, 'default', dir, { etcd: version.binaries.etcd });
    try {
      return await withClient(member, async (client) => {
        const deltas: DeltaName[] = classifyKeys((await source.store.list(DELTA_DIR)).map((o) => o.key)).deltas;
        const started = performance.now();
        for (const delta of planDeltas(deltas, source.baseRevision, toRevision)) {
          const spool = join(dir, 'object');
          await pipeline((await source.store.get(delta.key)).body, createWriteStream(spool));
          for await (const revision of groupByRevision(decodeDeltaEvents(createReadStream(spool), delta.compression, delta.key))) {
            if (revision.rev <= source.baseRevision || revision.rev > toRevision) continue;
            for (const event of revision.events) {
              if (event.type === 'PUT') await client.kv.put({ key: event.key, value: event.value });
              else await client.kv.deleteRange({ key: event.key });
            }
          }
        }
        const seconds = (performance.now() - started) / 1000;
        log(`${version.minor}, naive: ${toRevision - source.baseRevision} revisions in ${seconds.toFixed(1)} s`);
        return seconds;
      });
    } finally {
      await member.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `puts` puts of 1 MiB random values over 100 keys, archived uncompressed, restored by a child process. */
async function measureBig(root: string, version: Version, puts: number): Promise<NonNullable<VersionResult['big']>> {
  const source = await startSource(root, version, 'big');
  try {
    for (let i = 0; i < puts; i++) await source.client.put(`bench/big/${i % 100}`).value(randomBytes(MiB));
    source.head = await headRevision(source.client);
    await archive(source, 'none');
    const sourcePeakRss = await peakRssBytes(source.etcd.process.pid);
    const restoreWith = async (memberRestartBytes: number | undefined): Promise<RestoreChildReport> => {
      const dataDir = await mkdtemp(join(source.dir, 'restored-'));
      try {
        const report = await runRestoreChild({ storeDir: join(source.dir, 'store'), dataDir: join(dataDir, 'data'), tools: version.binaries, memberRestartBytes });
        if (report.revision !== source.head) throw new Error(`big restore reached ${report.revision}, not ${source.head}`);
        log(
          `${version.minor}, ${puts} x 1 MiB: member peak ${mib(report.memberPeakRssBytes)} (anonymous ${mib(report.memberPeakAnonRssBytes)}), ` +
            `${report.memberRestarts} restarts, restore's own peak ${mib(report.ownPeakRssBytes)}, ${report.seconds.toFixed(1)} s`,
        );
        return report;
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    };
    const restarting = await restoreWith(undefined);
    const notRestarting = await restoreWith(Number.MAX_SAFE_INTEGER);
    return { puts, sourcePeakRss, restarting, notRestarting };
  } finally {
    source.client.close();
    await source.etcd.stop();
    await rm(source.dir, { recursive: true, force: true });
  }
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
  results: VersionResult[],
  context: { load: number[]; commit: string; revisions: number; cap: number; depth: number; writeSvg: boolean },
): Promise<{ markdown: string; goals: GoalRow[] }> {
  const goals: GoalRow[] = [];
  const rate = (r: Row): number => r.revisions / r.replaySeconds;
  const lines: string[] = [
    '## Restore: replay speed and the temporary member\'s memory, per etcd version',
    '',
    `Measured with \`node --import tsx bench/restore.ts\` at commit ${context.commit} on ${new Date().toISOString().slice(0, 10)}, ` +
      `${cpus().length} CPUs, load average ${context.load.map((l) => l.toFixed(1)).join(' -> ')}. ` +
      `${context.load[0]! > cpus().length ? 'The machine was busy with other work while this ran. ' : ''}` +
      `The sizes are modest (${context.revisions} small revisions per version, not the 1.8M of a 1-hour chain) and every figure is a single run. ` +
      'Without fsync the rate tops out at about the same figure on disk and on tmpfs, and more txns in flight do not raise it: ' +
      'there it is bound by the CPU that each revision\'s txn costs the client and etcd, not by the disk.',
    '',
    'Each row is one real `restore` (restoreBackup with that version\'s etcd, etcdctl/etcdutl) of the same archive ' +
      '(gzip delta objects of 1000 revisions written by the DeltaPoller; puts of 32 B values over 10k keys, ~10% deletes) ' +
      'into a fresh data dir. "replay/s" times only the replay; "restore s" the whole command (download, snapshot ' +
      'restore, member start and stop, copy off tmpfs, fsync). "exact" = the restored data dir, started, has the ' +
      'source\'s head revision and every key\'s value, create/mod revision and version. Before etcd 3.6 the temporary member ' +
      'restarts every 128 MiB replayed (none at this size).',
    '',
  ];
  for (const result of results) {
    lines.push(`### etcd ${result.version}`, '');
    const rows = [...result.rows, ...(result.bounded ? [result.bounded] : [])];
    lines.push(
      markdownTable(
        [
          { title: 'configuration' },
          { title: 'revisions', align: 'right' },
          { title: 'replay s', align: 'right' },
          { title: 'replay/s', align: 'right' },
          { title: 'restore s', align: 'right' },
          { title: 'member peak RSS', align: 'right' },
          { title: 'exact' },
        ],
        rows.map((r) => [
          r.config + (r.onTmpfs ? '' : r.config.startsWith('default') ? ' (on disk)' : ''),
          String(r.revisions),
          r.replaySeconds.toFixed(1),
          String(Math.round(rate(r))),
          r.seconds.toFixed(1),
          mib(r.memberPeakRss),
          r.exact ? 'yes' : 'NO',
        ]),
      ),
      '',
    );
    const best = result.rows.filter((r) => r.exact).sort((a, b) => rate(b) - rate(a))[0];
    const defaultRow = result.rows.find((r) => r.config.includes('(default)'));
    if (defaultRow && result.bounded) {
      const r = rate(defaultRow);
      const overhead = defaultRow.seconds - defaultRow.replaySeconds;
      lines.push(
        `Bound on vs off: the whole chain (${defaultRow.revisions} revisions) restored in ${defaultRow.seconds.toFixed(1)} s, ` +
          `the chain capped at ${context.cap} revisions (a full snapshot taken ${context.cap} revisions before the end, as ` +
          `\`maxDeltaRevisions: ${context.cap}\` would) in ${result.bounded.seconds.toFixed(1)} s. Extrapolated at the ` +
          `measured ${Math.round(r)} revisions/s plus this run's ${overhead.toFixed(1)} s of fixed cost: a 1-hour chain of ` +
          `${HOUR_CHAIN.toLocaleString('en')} revisions (bound off) ~${minutes(HOUR_CHAIN / r + overhead)}, ` +
          `the default bound of ${BOUND.toLocaleString('en')} ~${minutes(BOUND / r + overhead)} (not run at that size).`,
        '',
      );
    }
    if (result.naive) {
      lines.push(
        `Naive replay (one request per event, awaited; first ${result.naive.revisions} revisions, on disk with fsync): ` +
          `${Math.round(result.naive.revisions / result.naive.seconds)} revisions/s, vs restore on disk with fsync ` +
          `${Math.round(result.naive.revisions / result.naive.oursSeconds)}/s.`,
        '',
      );
    }
    if (result.big) {
      const { puts, sourcePeakRss, restarting, notRestarting } = result.big;
      lines.push(
        `${puts} x 1 MiB puts (random values over 100 keys, uncompressed objects; the source etcd peaked at ${mib(sourcePeakRss)}), ` +
          `each restore in its own process (${restarting.dataDirOnTmpfs ? 'tmpfs' : 'disk'}). "member RSS" is VmHWM: it also ` +
          'counts the pages of the bbolt db file that etcd has mapped (etcd maps its db with MAP_POPULATE, and bbolt reads ' +
          "written pages back through the map), which are the page cache's or the tmpfs's pages, not etcd's heap, so it " +
          "stays above the db's size (~1 GiB here) whatever restore does. \"anonymous\" is the peak of RssAnon (heap and " +
          "raft log: what the restarts, or 3.6's --snapshot-catchup-entries, bound), sampled every 250 ms.",
        '',
        markdownTable(
          [
            { title: 'member restarts' },
            { title: 'member RSS', align: 'right' },
            { title: 'anonymous', align: 'right' },
            { title: 'restore\'s own RSS', align: 'right' },
            { title: 'restore s', align: 'right' },
          ],
          [
            [`default (every 128 MiB before 3.6, none on 3.6): ${restarting.memberRestarts}`, restarting],
            ['off', notRestarting],
          ].map(([label, r]) => {
            const report = r as RestoreChildReport;
            return [label as string, mib(report.memberPeakRssBytes), mib(report.memberPeakAnonRssBytes), mib(report.ownPeakRssBytes), report.seconds.toFixed(1)];
          }),
        ),
        '',
      );
      goals.push({
        goal: `restore of ${puts} x 1 MB puts: temporary member < 1 GiB RSS (etcd ${result.minor})`,
        measured: `${mib(restarting.memberPeakRssBytes)} (anonymous ${mib(restarting.memberPeakAnonRssBytes)})`,
        met: restarting.memberPeakRssBytes !== undefined && restarting.memberPeakRssBytes < GOAL_MEMBER_RSS,
      });
      // The part of it a restore can bound (the rest is the db file's mapped pages, see above).
      goals.push({
        goal: `restore of ${puts} x 1 MB puts: temporary member's anonymous memory < 1 GiB (etcd ${result.minor})`,
        measured: mib(restarting.memberPeakAnonRssBytes),
        met: restarting.memberPeakAnonRssBytes !== undefined && restarting.memberPeakAnonRssBytes < GOAL_MEMBER_RSS,
      });
    }
    if (best && result.minor !== '3.4') {
      goals.push({
        goal: `restore >= ${GOAL_RATE} revisions/s, small values (etcd ${result.minor})`,
        measured: `${Math.round(rate(best))}/s (${best.config})`,
        met: rate(best) >= GOAL_RATE,
      });
    }
  }
  lines.push(...goals.map((g) => `- Goal "${g.goal}": measured ${g.measured}: ${g.met ? '**met**' : '**not met**'}.`), '');
  if (context.writeSvg) {
    const title = 'Delta replay speed per etcd version (revisions/s, higher is better)';
    const configs = ['disk, fsync', 'tmpfs', '--unsafe-no-fsync', 'txns in flight'];
    const pick = (result: VersionResult, c: string): number => {
      const row = result.rows.find((r) => (c === 'tmpfs' ? r.config.startsWith('tmpfs') : r.config.includes(c)));
      return row ? rate(row) : Number.NaN;
    };
    const svg = barChartSvg({
      title,
      yLabel: 'revisions/s',
      categories: results.map((r) => `etcd ${r.version}`),
      series: configs.map((c) => ({ name: c, values: results.map((r) => pick(r, c)) })),
      goal: { value: GOAL_RATE, label: `goal ${GOAL_RATE}/s (3.5/3.6)` },
    });
    lines.push(await writeChart('restore-rate', title, svg), '');
  }
  return { markdown: lines.join('\n'), goals };
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? 'unknown' : `${Math.round(bytes / MiB)} MiB`;
}

function minutes(seconds: number): string {
  return seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

function log(message: string): void {
  console.error(`[restore-bench] ${message}`);
}

await main();
