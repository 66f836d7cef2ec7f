/**
 * Restore's temporary member stays bounded whatever the chain: it is restarted every so many
 * replayed bytes (etcd drops the raft entries it held in memory), and its data dir sits on tmpfs
 * when the data fits there, copied to --data-dir at the end. Both against real etcd processes; the
 * restored member must equal the source either way.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { headRevision } from '../../src/etcd/client.js';
import { restoreBackup, startMember, withClient, type RestoreOptions } from '../../src/restore/restore.js';
import { TMPFS_DIR } from '../../src/restore/restore-plan.js';
import { LocalStore } from '../../src/store/local-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { etcdTools, skipUnlessBuilt } from '../harness/test-tools.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';
import { capturedLogger } from '../helpers/captured-logs.js';
import { allKeys, comparableKeys, writeMixedWorkload } from '../helpers/workload.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const VALUE_BYTES = 4096;
const BIG_PUTS = 60;

/** A source with a kept-alive lease in its snapshot and, after it, 4 KiB puts and a mixed workload. */
let source: TestEtcd;
let store: LocalStore;
let head: number;
let leaseId: string;
before(async () => {
  source = await startTestEtcd();
  cleanups.push(() => source.stop());
  const client = source.client();
  const lease = client.lease(600, { autoKeepAlive: false });
  leaseId = await lease.grant();
  await lease.put('bounded/leased').value('held');
  const dir = await tempDir('restore-bounded-');
  store = new LocalStore(join(dir, 'store'));
  await saveFullSnapshot(source, store, dir);
  for (let i = 0; i < BIG_PUTS; i++) await client.put(`bounded/big/${i % 7}`).value(Buffer.alloc(VALUE_BYTES, i));
  await writeMixedWorkload(client, 'bounded/mixed/', 150);
  head = await archiveDeltas(source, store);
});

/** Restores with `options` into a fresh data dir; checks the result against the source at the head. */
async function restoreAndCompare(options: Partial<RestoreOptions>): Promise<Awaited<ReturnType<typeof restoreBackup>> & { dataDir: string; memberDir: string }> {
  const dataDir = join(await tempDir('restore-bounded-out-'), 'data');
  const captured = capturedLogger('info');
  const result = await restoreBackup({ store, dataDir, logger: captured.logger, ...options });
  assert.equal(result.revision, head, 'restore lands on the head revision');
  const memberDir = captured.lines().find((line) => line.message === 'Restored full snapshot')?.dataDir;
  assert.equal(typeof memberDir, 'string', 'the temporary member logged its data dir');
  const member = await startMember(dataDir, 'default', await tempDir('restore-bounded-member-'), { etcd: options.tools?.etcd });
  try {
    await withClient(member, async (client) => {
      assert.equal(await headRevision(client), head);
      assert.deepEqual(comparableKeys(await allKeys(client)), comparableKeys(await allKeys(source.client(), head)), 'restored keys equal the source');
      const { leases } = await client.leaseClient.leaseLeases();
      assert.ok(leases.some((l) => l.ID === leaseId), 'the snapshot lease is still there');
    });
  } finally {
    await member.stop();
  }
  return { ...result, dataDir, memberDir: memberDir as string };
}

for (const minor of ['3.4', '3.6'] as const) {
  const tools = etcdTools(minor);
  test(`etcd ${minor}: the temporary member restarts every N replayed bytes, keeps its leases, and the result equals the source`, { skip: skipUnlessBuilt(tools, `etcd ${minor}`) }, async () => {
    // Every 4 puts of 4 KiB: at least BIG_PUTS / 4 restarts from the big values alone.
    const everyBytes = 4 * VALUE_BYTES;
    const result = await restoreAndCompare({ tools: tools!, memberRestartBytes: everyBytes });
    assert.ok(result.temporaryMember.restarts >= BIG_PUTS / 4, `restarted ${result.temporaryMember.restarts} times`);
    assert.ok(result.temporaryMember.peakRssBytes !== undefined && result.temporaryMember.peakRssBytes > 0, 'peak RSS over the runs read');
  });
}

test('by default the replay runs on tmpfs, is copied to --data-dir, and nothing is left on tmpfs', { skip: skipUnlessTmpfs() }, async () => {
  const result = await restoreAndCompare({});
  assert.equal(result.temporaryMember.dataDirOnTmpfs, true);
  assert.ok(result.memberDir.startsWith(`${TMPFS_DIR}/`), `the member ran in ${result.memberDir}`);
  await assert.rejects(stat(join(result.memberDir, '..')), { code: 'ENOENT' }, 'the tmpfs dir is gone');
  assert.equal(result.temporaryMember.restarts, 0, 'the default restart threshold is far above this chain');
});

test('--no-tmpfs replays in the data dir itself', async () => {
  const result = await restoreAndCompare({ tmpfs: false });
  assert.equal(result.temporaryMember.dataDirOnTmpfs, false);
  assert.equal(result.memberDir, result.dataDir);
});

test('a tmpfs too small for the expected data is not used', async () => {
  // The placement follows the tmpfs's free space: a tmpfs dir that does not exist has none.
  const missing = join(await tempDir('restore-bounded-notmpfs-'), 'absent');
  const result = await restoreAndCompare({ tmpfsDir: missing });
  assert.equal(result.temporaryMember.dataDirOnTmpfs, false);
  assert.equal(result.memberDir, result.dataDir);
});

function skipUnlessTmpfs(): false | string {
  return process.platform === 'linux' ? false : `${TMPFS_DIR} is Linux's`;
}
