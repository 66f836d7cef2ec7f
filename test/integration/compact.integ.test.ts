/**
 * `etcd-backup compact` (issue #13, bounded restore time), run as a user would against a store built
 * from a real etcd: the newest full snapshot plus its deltas become one full snapshot named by its
 * exact revision, so a later restore to the latest point replays only what came after it, and the
 * result equals the source.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import { classifyKeys } from '../../src/archive/naming.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { verifyBackup } from '../../src/restore/verify.js';
import { LocalStore } from '../../src/store/local-store.js';
import { SHA256_METADATA_KEY } from '../../src/store/object-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';
import { runCli } from '../helpers/cli.js';
import { writeMixedWorkload } from '../helpers/workload.js';

const logger = silentLogger();
let etcd: TestEtcd;
let dir: string;

before(async () => {
  etcd = await startTestEtcd();
  dir = await mkdtemp(join(tmpdir(), 'compact-'));
});

after(async () => {
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('compact folds the newest chain into a full snapshot at its exact revision; a restore then replays only later deltas and equals the source', { timeout: 180_000 }, async () => {
  const storeDir = join(dir, 'store');
  const store = new LocalStore(storeDir);
  const url = `file://${storeDir}`;
  const client = etcd.client();

  // Nothing in the store: nothing to compact, and that is not a failure.
  const empty = await runCli(['compact', '--store', url]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /^nothing to compact: no full snapshot in /);

  await writeMixedWorkload(client, 'before/', 200, 1);
  const { base } = await saveFullSnapshot(etcd, store, dir);
  await writeMixedWorkload(client, 'chain/', 300, 2);
  const compactedAt = await archiveDeltas(etcd, store);

  const compacted = await runCli(['compact', '--store', url], { timeoutMs: 120_000 });
  assert.equal(compacted.code, 0, compacted.stderr);
  assert.match(compacted.stdout, new RegExp(`\\+ ${compactedAt - base} delta revisions into .* revision=${compactedAt} `));
  const fulls = classifyKeys((await store.list('')).map((o) => o.key)).fulls;
  assert.deepEqual(fulls.map((f) => f.revision), [base, compactedAt], 'one new full snapshot, named by its exact revision');
  const stored = await store.get(fulls[1]!.key);
  assert.match(stored.metadata[SHA256_METADATA_KEY] ?? '', /^[0-9a-f]{64}$/, 'stored with its checksum');
  await buffer(stored.body); // the store checks the sha256 as the body ends

  // Run again: the newest snapshot has no delta after it.
  const again = await runCli(['compact', '--store', url]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^nothing to compact: the newest full snapshot .* has no delta after it/);

  await writeMixedWorkload(client, 'after/', 100, 3);
  const head = await archiveDeltas(etcd, store);

  const restored = await restoreBackup({ store, dataDir: join(dir, 'restored'), logger });
  assert.equal(restored.snapshot.key, fulls[1]!.key, 'the restore starts from the compacted snapshot');
  assert.equal(restored.snapshotRevision, compactedAt);
  assert.equal(restored.revisionsApplied, head - compactedAt, 'no delta from before the compacted revision is replayed');
  assert.equal(restored.revision, head);

  const live = { endpoints: [etcd.clientUrl] };
  const latest = await verifyBackup({ store, logger, live });
  assert.equal(latest.revision, head);
  assert.deepEqual(latest.comparison?.differences, []);
  assert.equal(latest.comparison?.matches, true);
  // Revisions inside the compacted range are still reachable through the older snapshot and its deltas.
  const inside = await verifyBackup({ store, logger, live, toRevision: base + 10 });
  assert.equal(inside.snapshot, fulls[0]!.key);
  assert.equal(inside.comparison?.matches, true);
});
