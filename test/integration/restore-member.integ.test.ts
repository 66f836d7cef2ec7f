/**
 * Restore's temporary member against a real etcd: it runs with the quota restore sized for the data
 * and a small --snapshot-count (its raft log is compacted as the replay goes, instead of piling up in
 * memory), and restore reports its peak memory and the restored db's size.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DELTA_DIR } from '../../src/archive/naming.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup, REPLAY_SNAPSHOT_CATCHUP_ENTRIES, REPLAY_SNAPSHOT_COUNT } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { GetResult } from '../../src/store/object-store.js';
import { startTestEtcd } from '../harness/etcd.js';
import { etcdTools, skipUnlessBuilt } from '../harness/test-tools.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';

const logger = silentLogger();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

/** The command line of the etcd serving `dataDir`, read from /proc while it runs. */
async function etcdArgsFor(dataDir: string): Promise<string[] | undefined> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const args = await readFile(`/proc/${pid}/cmdline`, 'utf8').then((c) => c.split('\0'), (): string[] => []);
    const at = args.indexOf('--data-dir');
    if (at >= 0 && args[at + 1] === dataDir && !args.includes('-c')) return args;
  }
  return undefined;
}

/** Captures the temporary member's command line when the replay asks for its first delta object. */
class ArgsCapturingStore extends DelegatingStore {
  memberArgs: string[] | undefined;
  constructor(
    inner: LocalStore,
    private readonly dataDir: string,
  ) {
    super(inner);
  }

  override async get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    if (key.startsWith(DELTA_DIR) && !this.memberArgs) this.memberArgs = await etcdArgsFor(this.dataDir);
    return this.inner.get(key, options);
  }
}

test('the temporary member runs with the sized quota and a small snapshot count; restore reports its peak RSS and the db size', async () => {
  const etcd = await startTestEtcd();
  cleanups.push(() => etcd.stop());
  const client = etcd.client();
  await client.put('seed').value('x');
  const dir = await mkdtemp(join(tmpdir(), 'restore-member-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const inner = new LocalStore(join(dir, 'store'));
  await saveFullSnapshot(etcd, inner, dir);
  const revisions = REPLAY_SNAPSHOT_COUNT * 2;
  for (let i = 0; i < revisions; i++) await client.put(`m/${i % 50}`).value(`value ${i}`);
  const head = await archiveDeltas(etcd, inner);

  const dataDir = join(dir, 'data');
  const store = new ArgsCapturingStore(inner, dataDir);
  // On disk (tmpfs: false): the member is found by its data dir, and its raft snapshots are read there.
  const result = await restoreBackup({ store, dataDir, logger, tmpfs: false });
  assert.equal(result.revision, head);

  const args = store.memberArgs;
  assert.ok(args, 'the temporary member was found running');
  assert.equal(args[args.indexOf('--quota-backend-bytes') + 1], String(result.temporaryMember.quotaBytes));
  assert.equal(args[args.indexOf('--snapshot-count') + 1], String(REPLAY_SNAPSHOT_COUNT));
  // etcd took raft snapshots during the replay, so its in-memory log was compacted as it went:
  // snapshot files are named <term>-<raft index>.snap; the one `snapshot restore` writes is at the
  // start, and with etcd's default --snapshot-count (100,000) no other would exist after a few
  // thousand entries.
  const indexes = (await readdir(join(dataDir, 'member', 'snap')))
    .filter((f) => f.endsWith('.snap'))
    .map((f) => parseInt(f.split('-')[1]!, 16));
  assert.ok(Math.max(...indexes) >= REPLAY_SNAPSHOT_COUNT, `raft snapshot indexes: ${indexes.join(', ')}`);
  assert.ok(result.temporaryMember.peakRssBytes !== undefined && result.temporaryMember.peakRssBytes > 0, 'peak RSS read');
  assert.ok(result.dbSizeBytes > 0, 'db size read');
});

for (const minor of ['3.4', '3.6'] as const) {
  const tools = etcdTools(minor);
  test(`etcd ${minor}: the temporary member runs ${minor === '3.4' ? 'with fsync (3.4 has no --unsafe-no-fsync)' : 'with --unsafe-no-fsync'} and the restore is exact`, { skip: skipUnlessBuilt(tools, `etcd ${minor}`) }, async () => {
    const etcd = await startTestEtcd();
    cleanups.push(() => etcd.stop());
    const client = etcd.client();
    await client.put('seed').value('x');
    const dir = await mkdtemp(join(tmpdir(), `restore-fsync-${minor}-`));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const inner = new LocalStore(join(dir, 'store'));
    await saveFullSnapshot(etcd, inner, dir);
    for (let i = 0; i < 200; i++) await client.put(`f/${i % 20}`).value(`value ${i}`);
    const head = await archiveDeltas(etcd, inner);
    const dataDir = join(dir, 'data');
    const store = new ArgsCapturingStore(inner, dataDir);
    const result = await restoreBackup({ store, dataDir, tools: tools!, logger, tmpfs: false });
    assert.equal(result.revision, head);
    assert.ok(store.memberArgs, 'the temporary member was found running');
    assert.equal(store.memberArgs.includes('--unsafe-no-fsync'), minor !== '3.4');
    // 3.6 keeps only a few raft entries in memory after each raft snapshot; 3.4 has no such flag.
    const catchup = store.memberArgs.indexOf('--snapshot-catchup-entries');
    assert.equal(catchup >= 0 ? store.memberArgs[catchup + 1] : undefined, minor === '3.6' ? String(REPLAY_SNAPSHOT_CATCHUP_ENTRIES) : undefined);
  });
}
