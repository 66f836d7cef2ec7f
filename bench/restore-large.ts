/**
 * A restore above etcd's default 2 GiB quota (issue #13, item 6): a source etcd with an 8 GiB quota
 * gets a db of `--db-gib` (default 2.3) GiB of 1 MiB random values, a full snapshot of it goes into a
 * local store, then more revisions (small puts and a few 1 MiB ones) are archived as deltas by the real
 * DeltaPoller. `restore` (in its own process, bench/lib/restore-child.ts) must replay them on top: the
 * temporary member's quota is sized for the data (temporaryQuotaBytes), so no "database space
 * exceeded". The restored data dir is started and checked against the source: head revision, every
 * key's create/mod revision and version, and the values of every key the deltas wrote.
 *
 *   node --import tsx bench/restore-large.ts [--db-gib 2.3] [--versions 3.4,3.6] [--no-write]
 *
 * Not part of `npm test` or `npm run bench` (it needs ~12 GB of disk and ~3.5 GB of tmpfs, and minutes).
 * The source runs with a small --snapshot-count (and 3.6's --snapshot-catchup-entries) so that it holds
 * less of the 2.3 GB in its raft log on a shared machine. Writes its own section of docs/benchmarks.md.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { fullSnapshotKey } from '../src/archive/naming.js';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import { DeltaPoller } from '../src/engine/delta-poller.js';
import { createEtcdClient, headRevision } from '../src/etcd/client.js';
import { startLocalEtcd } from '../src/etcd/local-etcd.js';
import { silentLogger } from '../src/observability/logger.js';
import { startMember, withClient } from '../src/restore/restore.js';
import { LocalStore } from '../src/store/local-store.js';
import { etcdTools, type EtcdMinor } from '../test/harness/test-tools.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals } from './lib/goals.js';
import { runRestoreChild, type RestoreChildReport } from './lib/restore-child.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECTION = 'restore-large';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface LargeResult {
  minor: EtcdMinor;
  bigKeys: number;
  snapshotBytes: number;
  snapshotRevision: number;
  deltaRevisions: number;
  dbSize: number;
  report: RestoreChildReport;
  exact: boolean;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'db-gib': { type: 'string', default: '2.3' },
      versions: { type: 'string', default: '3.4,3.6' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const dbBytes = Number(values['db-gib']) * GiB;
  if (!(dbBytes > 0)) throw new Error('need --db-gib > 0');
  const load = [loadavg()[0] ?? 0];
  const commit = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo })).stdout.trim();
  const results: LargeResult[] = [];
  for (const minor of values.versions.split(',') as EtcdMinor[]) results.push(await measureLarge(minor, dbBytes));
  load.push(loadavg()[0] ?? 0);
  const markdown = [
    '## Restore above 2 GiB: a 2.3 GiB db plus deltas',
    '',
    `Measured with \`node --import tsx bench/restore-large.ts\` at commit ${commit} on ${new Date().toISOString().slice(0, 10)}, ` +
      `${cpus().length} CPUs, load average ${load.map((l) => l.toFixed(1)).join(' -> ')} (shared machine; one run per version). ` +
      'Not part of `npm run bench`: it needs ~12 GB of disk, ~3.5 GB of tmpfs and several minutes.',
    '',
    ...results.map(
      (r) =>
        `- etcd ${r.minor} tools: the source (quota 8 GiB) held a ${(r.snapshotBytes / GiB).toFixed(2)} GiB snapshot db at revision ` +
        `${r.snapshotRevision} (${r.bigKeys} random 1 MiB values), then ${r.deltaRevisions} delta revisions (2000 small puts, 20 of 1 MiB). ` +
        `\`restore\` (own process, defaults: ${r.report.dataDirOnTmpfs ? 'replay on tmpfs, then copied to the data dir' : 'replay on disk'}) ` +
        `reached revision ${r.report.revision} in ${r.report.seconds.toFixed(0)} s (replay ${r.report.replaySeconds.toFixed(1)} s); ` +
        `restored db ${(r.dbSize / GiB).toFixed(2)} GiB; temporary member peak RSS ${mib(r.report.memberPeakRssBytes)} ` +
        `(anonymous ${mib(r.report.memberPeakAnonRssBytes)}, ${r.report.memberRestarts} restarts), restore's own ${mib(r.report.ownPeakRssBytes)}. ` +
        `The restored member (started with --quota-backend-bytes 8 GiB) equals the source (head revision, every key's ` +
        `create/mod revision and version, values of the keys the deltas wrote): ${r.exact ? '**yes**' : '**NO**'}.`,
    ),
    '',
  ].join('\n');
  console.log('\n' + markdown);
  if (!values['no-write']) {
    await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, markdown);
    await recordGoals(
      SECTION,
      results.map((r) => ({
        goal: `a 2.3 GiB db (source quota 8 GiB) with deltas restores (etcd ${r.minor})`,
        measured: `${(r.snapshotBytes / GiB).toFixed(2)} GiB db, exact: ${r.exact ? 'yes' : 'no'}`,
        met: r.exact && r.snapshotBytes >= 2.3 * GiB,
      })),
    );
  }
}

async function measureLarge(minor: EtcdMinor, dbBytes: number): Promise<LargeResult> {
  const tools = etcdTools(minor);
  if (!tools) throw new Error(`etcd ${minor} tools are not built (scripts/install-test-tools.sh)`);
  const binaries = { etcd: tools.etcd, etcdctl: tools.etcdctl, ...(tools.etcdutl ? { etcdutl: tools.etcdutl } : {}) };
  const root = await mkdtemp(join(tmpdir(), 'restore-large-bench-'));
  const source = await startLocalEtcd({
    dataDir: join(root, 'source'),
    binary: tools.etcd,
    extraArgs: [
      '--quota-backend-bytes', String(8 * GiB),
      '--snapshot-count', '100',
      ...(minor === '3.6' ? ['--snapshot-catchup-entries', '100'] : []),
      ...(minor !== '3.4' ? ['--unsafe-no-fsync'] : []),
    ],
  });
  const client = createEtcdClient({ endpoints: [source.clientUrl], callTimeoutMs: 120_000 });
  try {
    const started = performance.now();
    const bigKeys = Math.ceil(dbBytes / MiB);
    for (let i = 0; i < bigKeys; i++) await client.put(`large/big/${String(i).padStart(5, '0')}`).value(randomBytes(MiB));
    const snapshotFile = join(root, 'full.db');
    const snapshotRevision = await headRevision(client);
    await run(tools.etcdctl, ['--endpoints', source.clientUrl, 'snapshot', 'save', snapshotFile], { env: { ...process.env, ETCDCTL_API: '3' } });
    const snapshotBytes = (await stat(snapshotFile)).size;
    const store = new LocalStore(join(root, 'store'));
    await store.put(fullSnapshotKey(snapshotRevision, new Date(), { compression: 'none', encrypted: false }), createReadStream(snapshotFile));
    await rm(snapshotFile);
    log(`${minor}: db of ${(snapshotBytes / GiB).toFixed(2)} GiB at revision ${snapshotRevision} in ${((performance.now() - started) / 1000).toFixed(0)} s`);

    // Deltas: small puts and a few more 1 MiB values, so the restored db grows past the snapshot's.
    for (let i = 0; i < 2000; i++) await client.put(`large/small/${i % 200}`).value(`value ${i}`);
    for (let i = 0; i < 20; i++) await client.put(`large/delta-big/${i}`).value(randomBytes(MiB));
    const head = await headRevision(client);
    const poller = new DeltaPoller({
      client,
      store,
      budget: new MemoryBudget(64 * MiB),
      periodMs: 1000,
      chunkRevisions: 1000,
      parallelism: 2,
      compression: 'gzip',
      logger: silentLogger(),
    });
    await poller.start();
    while ((await poller.pollOnce()).archivedRevision < head) {
      /* until the head is archived */
    }
    await poller.stop();
    log(`${minor}: ${head - snapshotRevision} delta revisions archived; restoring`);

    const dataDir = join(root, 'restored');
    const report = await runRestoreChild({ storeDir: join(root, 'store'), dataDir, tools: binaries });
    const dbSize = (await stat(join(dataDir, 'member', 'snap', 'db'))).size;
    log(`${minor}: restored to ${report.revision} in ${report.seconds.toFixed(0)} s`);
    // Started with a quota above its size, as restore tells the user to.
    const member = await startMember(dataDir, 'default', root, { etcd: tools.etcd, quotaBytes: 8 * GiB });
    let exact: boolean;
    try {
      exact = await withClient(member, async (restored) => report.revision === head && (await headRevision(restored)) === head && (await same(client, restored, head)));
    } finally {
      await member.stop();
    }
    return { minor, bigKeys, snapshotBytes, snapshotRevision, deltaRevisions: head - snapshotRevision, dbSize, report, exact };
  } finally {
    client.close();
    await source.stop();
    await rm(root, { recursive: true, force: true });
  }
}

/** Every key's create/mod revision and version (keys only: 2.3 GB of values are not ranged at once), and the delta keys' values. */
async function same(source: Etcd3, restored: Etcd3, revision: number): Promise<boolean> {
  const all = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const keys = async (client: Etcd3, at?: number): Promise<string> => {
    const response = await client.kv.range({ ...all, keys_only: true, ...(at ? { revision: String(at) } : {}) });
    return response.kvs.map((kv) => `${kv.key.toString()} ${kv.create_revision} ${kv.mod_revision} ${kv.version}`).join('\n');
  };
  const values = async (client: Etcd3, at?: number): Promise<string> => {
    const hash = createHash('sha256');
    for (const prefix of ['large/small/', 'large/delta-big/']) {
      const response = await client.kv.range({ key: Buffer.from(prefix), range_end: Buffer.from(prefix.slice(0, -1) + '0'), ...(at ? { revision: String(at) } : {}) });
      for (const kv of response.kvs) hash.update(kv.key).update(kv.value);
    }
    return hash.digest('hex');
  };
  return (await keys(source, revision)) === (await keys(restored)) && (await values(source, revision)) === (await values(restored));
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? 'unknown' : `${Math.round(bytes / MiB)} MiB`;
}

function log(message: string): void {
  console.error(`[restore-large] ${message}`);
}

await main();
