/**
 * The etcd version matrix: the core of the suite against Debian's etcd 3.4 and etcd 3.5 / 3.6 built by
 * scripts/install-test-tools.sh (a version that is not built skips with the line naming that script).
 * Per version, one etcd is shared by the tests (each uses its own key prefix and store); the
 * compaction test runs last because compaction is global. Restores run with the same version's tools
 * (etcdutl where it exists, 3.4's etcdctl otherwise), and once more with the tools the Docker image
 * ships (etcd/etcdutl 3.6, the Dockerfile's ETCD_VERSION).
 * docs/compatibility.md is filled from this file.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import type { Etcd3 } from 'etcd3';
import { DeltaPoller, type DeltaPollerOptions } from '../../src/engine/delta-poller.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { clusterIdentity, createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { KeyValueRecord } from '../../src/etcd/read-all.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { etcdTools, skipUnlessBuilt, type EtcdMinor, type EtcdTools } from '../harness/test-tools.js';
import { chainOf } from '../helpers/backup-chain.js';
import { runCli, startCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const MiB = 1024 * 1024;
const logger = silentLogger();
/** What the Docker image ships (Dockerfile: etcd and etcdutl built at ETCD_VERSIONS['3.6']). */
const imageTools = etcdTools('3.6');

function pollerOptions(client: Etcd3, store: LocalStore, overrides: Partial<DeltaPollerOptions> = {}): DeltaPollerOptions {
  return { client, store, budget: new MemoryBudget(16 * MiB), periodMs: 50, chunkRevisions: 50, parallelism: 3, compression: 'gzip', logger, ...overrides };
}

/** Head revision and every key (value, create/mod revision, version) of a restored data dir, read from `tools`' etcd on it. */
async function readRestored(dataDir: string, tools: EtcdTools): Promise<{ head: number; keys: KeyValueRecord[] }> {
  const member = await startLocalEtcd({ dataDir, binary: tools.etcd, logFile: `${dataDir}.log` });
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  try {
    return { head: await headRevision(client), keys: await allKeys(client) };
  } finally {
    client.close();
    await member.stop();
  }
}

/**
 * A PATH holding only node, the shell the etcd watchdog runs, and `tools`' etcd programs: what the CLI
 * finds is exactly that version's (with 3.6, an etcdctl without `snapshot restore`).
 */
async function pathWithOnly(tools: EtcdTools, dir: string): Promise<string> {
  const programs: Array<[string, string]> = [
    ['node', process.execPath],
    ['sh', onPath('sh')],
    ['sleep', onPath('sleep')],
    ['etcd', onPath(tools.etcd)],
    ['etcdctl', onPath(tools.etcdctl)],
  ];
  if (tools.etcdutl) programs.push(['etcdutl', tools.etcdutl]);
  for (const [name, target] of programs) await symlink(target, join(dir, name));
  return dir;
}

/** `program` itself when it is a path, else where this process's PATH finds it. */
function onPath(program: string): string {
  if (program.includes('/')) return program;
  const found = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, program)).find((file) => existsSync(file));
  assert.ok(found, `${program} is not on PATH`);
  return found;
}

/** The one info line restore logs about the tools it chose. */
function toolLine(stderr: string): { restoreTool?: string; restoreToolVersion?: string; etcdVersion?: string } | undefined {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { message?: string; restoreTool?: string; restoreToolVersion?: string; etcdVersion?: string })
    .find((line) => line.message === 'Chose the etcd tools for the restore');
}

const VERSIONS: EtcdMinor[] = ['3.4', '3.5', '3.6'];

for (const minor of VERSIONS) {
  const tools = etcdTools(minor);
  describe(`etcd ${minor}`, { skip: skipUnlessBuilt(tools, `etcd ${minor}`) }, () => {
    const version = tools!;
    const expectedTool = minor === '3.4' ? 'etcdctl' : 'etcdutl';
    let etcd: TestEtcd;
    let work: string;
    const children: ChildProcess[] = [];
    /** The point-in-time test's store and head, restored again with the image's tools. */
    let pit: { store: LocalStore; head: number } | undefined;

    before(async () => {
      etcd = await startTestEtcd({ tools: version });
      work = await mkdtemp(join(tmpdir(), `etcd-matrix-${minor}-`));
    });

    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      await etcd?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('full snapshot: restore reproduces every key, value, revision and version; the log names the tool', async () => {
      const client = etcd.client();
      await writeMixedWorkload(client, 'full/', 400, 1);
      const store = new LocalStore(join(work, 'full-store'));
      const head = await headRevision(client);
      const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
      assert.equal(snapshot.revision, head);

      const lines: string[] = [];
      const stream = new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(chunk.toString())) });
      const dataDir = join(work, 'full-restored');
      const restored = await restoreBackup({ store, dataDir, tools: version, logger: createLogger({ stream }) });
      assert.equal(restored.revision, head);
      const chosen = toolLine(lines.join(''));
      assert.equal(chosen?.restoreTool, expectedTool);
      assert.match(chosen?.restoreToolVersion ?? '', new RegExp(`^${minor.replace('.', '\\.')}\\.`));
      assert.match(chosen?.etcdVersion ?? '', new RegExp(`^${minor.replace('.', '\\.')}\\.`));

      const got = await readRestored(dataDir, version);
      assert.equal(got.head, head);
      assert.deepEqual(got.keys, await allKeys(client, head));
    });

    test('deltas: point-in-time restores equal the source at the target (keys, values, revisions, versions, head)', async () => {
      const client = etcd.client();
      const store = new LocalStore(join(work, 'pit-store'));
      await writeMixedWorkload(client, 'pit-a/', 200, 2);
      const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
      const poller = new DeltaPoller(pollerOptions(etcd.client(), store));
      await poller.start();
      try {
        await writeMixedWorkload(client, 'pit-b/', 600, 3);
      } finally {
        await poller.stop();
      }
      const head = await headRevision(client);
      assert.equal((await new DeltaPoller(pollerOptions(etcd.client(), store)).pollOnce()).archivedRevision, head);
      const chain = await chainOf(store);
      assert.equal(chain.end, head);
      assert.ok(chain.deltas > 3, `${chain.deltas} delta objects`);

      for (const target of [snapshot.revision, Math.floor((snapshot.revision + head) / 2), head]) {
        const dataDir = join(work, `pit-restored-${target}`);
        const restored = await restoreBackup({ store, dataDir, toRevision: target, tools: version, logger });
        assert.equal(restored.revision, target);
        const got = await readRestored(dataDir, version);
        assert.equal(got.head, target, 'restored head revision equals the target');
        assert.deepEqual(got.keys, await allKeys(client, target), `state at revision ${target}`);
      }
      pit = { store, head };
    });

    test('restore and verify through the CLI with only this version on PATH: MATCH, and one live difference reported', async () => {
      const client = etcd.client();
      const storeDir = join(work, 'verify-store');
      const store = new LocalStore(storeDir);
      await client.put('verify/one').value('before');
      const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'none' });
      await client.put('verify/one').value('source');
      const target = await headRevision(client);
      assert.equal((await new DeltaPoller(pollerOptions(client, store)).pollOnce()).archivedRevision, target);

      const pathDir = await mkdtemp(join(tmpdir(), `etcd-matrix-path-${minor}-`));
      const env = { PATH: await pathWithOnly(version, pathDir), ETCD_BIN: undefined, ETCDCTL_BIN: undefined, ETCDUTL_BIN: undefined };
      try {
        const storeUrl = `file://${storeDir}`;
        const dataDir = join(work, 'cli-restored');
        const restore = await runCli(['restore', '--store', storeUrl, '--data-dir', dataDir, '--to-revision', String(snapshot.revision)], { env });
        assert.equal(restore.code, 0, restore.stderr);
        assert.match(restore.stdout, new RegExp(`revision ${snapshot.revision}\\b`));
        assert.equal(toolLine(restore.stderr)?.restoreTool, expectedTool);

        const match = await runCli(['verify', '--store', storeUrl, '--to-revision', String(target), '--endpoints', etcd.clientUrl], { env });
        assert.equal(match.code, 0, match.stderr);
        assert.match(match.stdout, new RegExp(`^revision ${target}$`, 'm'));
        assert.match(match.stdout, /^live-comparison MATCH$/m);

        // A second cluster with the same history up to the snapshot, whose next revision writes another
        // value to the same key: at `target` exactly one key differs.
        const other = await startLocalEtcd({ dataDir, binary: version.etcd, logFile: `${dataDir}.log` });
        const otherClient = createEtcdClient({ endpoints: [other.clientUrl] });
        try {
          await otherClient.put('verify/one').value('changed');
          assert.equal(await headRevision(otherClient), target);
          const differ = await runCli(['verify', '--store', storeUrl, '--to-revision', String(target), '--endpoints', other.clientUrl], { env });
          assert.equal(differ.code, 1, differ.stderr);
          assert.match(differ.stdout, /^live-comparison MISMATCH$/m);
          const listed = differ.stdout.split('\n').filter((line) => line.startsWith('  '));
          assert.deepEqual(listed, ['  key "verify/one" differs (value)']);
          assert.match(differ.stderr, new RegExp(`backup at revision ${target} differs from the live cluster`));
        } finally {
          otherClient.close();
          await other.stop();
        }
      } finally {
        await rm(pathDir, { recursive: true, force: true });
      }
    });

    test('encryption: encrypted full snapshot and deltas restore with the key to the source', async () => {
      const client = etcd.client();
      const store = new LocalStore(join(work, 'enc-store'));
      const key = randomBytes(32);
      await writeMixedWorkload(client, 'enc-a/', 150, 4);
      await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip', encryptionKey: key });
      await writeMixedWorkload(client, 'enc-b/', 150, 5);
      const head = await headRevision(client);
      assert.equal((await new DeltaPoller(pollerOptions(client, store, { encryptionKey: key })).pollOnce()).archivedRevision, head);
      const chain = await chainOf(store);
      assert.ok(chain.deltas > 0 && chain.keys.every((k) => k.endsWith('.enc')), chain.keys.join(', '));

      const dataDir = join(work, 'enc-restored');
      const restored = await restoreBackup({ store, dataDir, encryptionKeys: [key], tools: version, logger });
      assert.equal(restored.revision, head);
      const got = await readRestored(dataDir, version);
      assert.equal(got.head, head);
      assert.deepEqual(got.keys, await allKeys(client, head));
    });

    test('kill -9 of run mid-chain, then restart: the chain is contiguous and restores equal the source', async () => {
      const storeDir = join(work, 'crash-store');
      const store = new LocalStore(storeDir);
      const file = join(work, 'crash.yaml');
      await writeFile(
        file,
        [
          'apiVersion: etcdbackup.io/v1alpha1',
          'kind: EtcdBackup',
          'metadata: { name: crash }',
          'spec:',
          `  etcd: { endpoints: ["${etcd.clientUrl}"] }`,
          `  store: { local: { path: ${storeDir} } }`,
          '  fullSnapshot: { schedule: "0 0 1 1 *" }',
          '  deltaSnapshot: { period: 1s, chunkRevisions: 40, chunkParallelism: 4 }',
          '  memory: { budget: 32Mi }',
        ].join('\n'),
      );
      const client = etcd.client();
      const first = startCli(['run', '-f', file]);
      children.push(first);
      // Read its output: a full pipe would block the process (and its backups) on a log write.
      let firstLog = '';
      first.stdout!.resume();
      first.stderr!.on('data', (chunk: Buffer) => (firstLog = (firstLog + chunk.toString()).slice(-3000)));
      const context = { context: () => firstLog };
      // Each step waits for the previous one (the CLI's start-up time varies with the machine's load).
      await waitFor('the first full snapshot', async () => (await chainOf(store)).fullRevision, context);
      const writer = writeMixedWorkload(client, 'crash-a/', 800, 7);
      const started = await waitFor('the first delta objects', async () => {
        const chain = await chainOf(store);
        return chain.end > chain.fullRevision! && chain;
      }, context);
      first.kill('SIGKILL');
      await once(first, 'exit');
      await writer;
      const beforeRestart = (await chainOf(store)).end;
      // Written while no run is up: the restart must archive them too.
      await writeMixedWorkload(client, 'crash-b/', 100, 8);

      const second = startCli(['run', '-f', file]);
      children.push(second);
      second.stdout!.resume();
      second.stderr!.resume();
      await writeMixedWorkload(client, 'crash-c/', 100, 9);
      const head = await headRevision(client);
      await waitFor('the chain to reach the head', async () => (await chainOf(store)).end >= head, { timeoutMs: 60_000, intervalMs: 250 });
      second.kill('SIGTERM');
      const [code] = (await once(second, 'exit')) as [number | null];
      assert.equal(code, 0);

      const chain = await chainOf(store);
      assert.equal(chain.fulls, 1, 'the restart resumed from the store: no unscheduled second full snapshot');
      assert.ok(beforeRestart < head, `the first run was killed before it archived everything (${beforeRestart} < ${head})`);
      assert.equal(chain.end, head, 'the chain reaches the head with no gap');
      // The store marker (store.json) works with this version: the first run wrote it with this cluster's
      // ID, the restart accepted it, and restore checked every object against it.
      const { clusterId } = await clusterIdentity(client);
      for (const target of [head, Math.floor((started.fullRevision! + head) / 2)]) {
        const dataDir = join(work, `crash-restored-${target}`);
        const restored = await restoreBackup({ store, dataDir, toRevision: target, tools: version, logger });
        assert.equal(restored.revision, target);
        assert.equal(restored.clusterId, clusterId, 'restore names the cluster the store marker records');
        const got = await readRestored(dataDir, version);
        assert.equal(got.head, target);
        assert.deepEqual(got.keys, await allKeys(client, target));
      }
    });

    test('backups of this version restore with the Docker image tools (etcd/etcdutl 3.6) to the source', { skip: skipUnlessBuilt(imageTools, 'etcd 3.6') }, async () => {
      assert.ok(pit, 'the point-in-time test stored a chain');
      const dataDir = join(work, 'image-restored');
      const restored = await restoreBackup({ store: pit.store, dataDir, tools: imageTools, logger });
      assert.equal(restored.revision, pit.head);
      const got = await readRestored(dataDir, imageTools!);
      assert.equal(got.head, pit.head);
      assert.deepEqual(got.keys, await allKeys(etcd.client(), pit.head));
    });

    // Last: compaction is global to the shared etcd.
    test('compaction past the archive: revisions lost, a new full snapshot, deltas continue, restore equals the source', async () => {
      const client = etcd.client();
      const store = new LocalStore(join(work, 'compact-store'));
      await client.put('compact/seed').value('0');
      await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
      const lost: Array<{ fromRevision: number; toRevision: number }> = [];
      // As the supervisor does on RevisionsLost: a real full snapshot at once, deltas continue after it.
      const onRevisionsLost = async (range: { fromRevision: number; toRevision: number }): Promise<{ revision: number }> => {
        lost.push(range);
        return takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
      };
      const poller = new DeltaPoller(pollerOptions(etcd.client(), store, { chunkRevisions: 10, parallelism: 2, onRevisionsLost }));
      for (let i = 0; i < 30; i++) await client.put(`compact/${i % 4}`).value(String(i));
      const archived = (await poller.pollOnce()).archivedRevision;
      assert.equal(archived, await headRevision(client));

      for (let i = 0; i < 60; i++) await client.put(`compact/${i % 4}`).value(`b${i}`);
      const compactAt = archived + 40;
      await client.kv.compact({ revision: String(compactAt), physical: true });
      const afterCompaction = await poller.pollOnce();
      assert.deepEqual(lost, [{ fromRevision: archived + 1, toRevision: compactAt }]);
      assert.ok(afterCompaction.revisionsLost, 'the progress reports the lost range');
      assert.equal(afterCompaction.archivedRevision, await headRevision(client));

      for (let i = 0; i < 25; i++) await client.put(`compact/${i % 3}`).value(`c${i}`);
      const head = await headRevision(client);
      assert.equal((await poller.pollOnce()).archivedRevision, head);
      const chain = await chainOf(store);
      assert.equal(chain.fulls, 2);
      assert.equal(chain.end, head);

      const dataDir = join(work, 'compact-restored');
      const restored = await restoreBackup({ store, dataDir, tools: version, logger });
      assert.equal(restored.revision, head);
      const got = await readRestored(dataDir, version);
      assert.equal(got.head, head);
      assert.deepEqual(got.keys, await allKeys(client, head));
    });
  });
}
