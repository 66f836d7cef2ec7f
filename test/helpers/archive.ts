/** Builds a backup in a store from a real etcd: a full snapshot with etcdctl, deltas with the real poller. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fullSnapshotKey } from '../../src/archive/naming.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { DeltaPoller } from '../../src/engine/delta-poller.js';
import { headRevision } from '../../src/etcd/client.js';
import { ETCDCTL_BINARY } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import type { TestEtcd } from '../harness/etcd.js';

const run = promisify(execFile);
const logger = silentLogger();

/** Full snapshot of `etcd` into `store` (uncompressed); returns the snapshot file and its revision. */
export async function saveFullSnapshot(etcd: TestEtcd, store: ObjectStore, dir: string): Promise<{ file: string; base: number }> {
  const file = join(dir, `full-${Date.now()}.db`);
  await run(ETCDCTL_BINARY, ['--endpoints', etcd.clientUrl, 'snapshot', 'save', file]);
  const { stdout } = await run(ETCDCTL_BINARY, ['snapshot', 'status', file, '-w', 'json']);
  const base = (JSON.parse(stdout) as { revision: number }).revision;
  await store.put(fullSnapshotKey(base, new Date(), { compression: 'none', encrypted: false }), createReadStream(file));
  return { file, base };
}

/** Archives every revision of `etcd` up to its head with the real delta poller; returns the head. */
export async function archiveDeltas(etcd: TestEtcd, store: ObjectStore): Promise<number> {
  const head = await headRevision(etcd.client());
  const poller = new DeltaPoller({
    client: etcd.client(),
    store,
    budget: new MemoryBudget(16 * 1024 * 1024),
    periodMs: 60_000,
    chunkRevisions: 100,
    parallelism: 2,
    compression: 'gzip',
    logger,
  });
  await poller.start();
  assert.equal((await poller.pollOnce()).archivedRevision, head);
  await poller.stop();
  return head;
}

