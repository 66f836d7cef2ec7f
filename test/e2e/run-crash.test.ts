import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { contiguousChainEnd } from '../../src/restore/restore-plan.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startCli } from '../helpers/cli.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

let etcd: TestEtcd;
let work: string;
const children: ChildProcess[] = [];

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'run-crash-test-'));
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await etcd?.stop();
  await rm(work, { recursive: true, force: true });
});

async function archivedEnd(store: LocalStore): Promise<number> {
  const listing = classifyKeys((await store.list('')).map((o) => o.key));
  const full = listing.fulls.at(-1);
  return full ? contiguousChainEnd(listing.deltas, full.revision) : 0;
}

test('kill -9 of run mid-chunk, then restart: the chain is contiguous and restore equals the source', async () => {
  const storeDir = join(work, 'store');
  const store = new LocalStore(storeDir);
  const file = join(work, 'backup.yaml');
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
  // Write while the first run archives, then kill it without warning in the middle of the work.
  await writeMixedWorkload(client, 'a/', 600, 11);
  const writer = writeMixedWorkload(client, 'b/', 1500, 12);
  await sleep(1500);
  first.kill('SIGKILL');
  await once(first, 'exit');
  await writer;
  const beforeRestart = await archivedEnd(store);

  const second = startCli(['run', '-f', file]);
  children.push(second);
  await writeMixedWorkload(client, 'c/', 300, 13);
  const head = await headRevision(client);
  const deadline = Date.now() + 60_000;
  while ((await archivedEnd(store)) < head && Date.now() < deadline) await sleep(250);
  second.kill('SIGTERM');
  const [code] = (await once(second, 'exit')) as [number | null];
  assert.equal(code, 0);

  const listing = classifyKeys((await store.list('')).map((o) => o.key));
  // The restart resumed from the store: still one full snapshot, no unscheduled second one.
  assert.equal(listing.fulls.length, 1, `full snapshots: ${listing.fulls.map((f) => f.key).join(', ')}`);
  assert.ok(beforeRestart < head, `the first run was killed before it archived everything (${beforeRestart} < ${head})`);
  assert.equal(await archivedEnd(store), head, 'the chain reaches the head with no gap');

  for (const target of [undefined, Math.floor((listing.fulls[0]!.revision + head) / 2)]) {
    const dataDir = join(work, `restored-${target ?? 'latest'}`);
    const restored = await restoreBackup({ store, dataDir, toRevision: target, logger: silentLogger() });
    const expectedRevision = target ?? head;
    assert.equal(restored.revision, expectedRevision);
    const member = await startLocalEtcd({ dataDir, logFile: `${dataDir}.log` });
    const restoredClient = createEtcdClient({ endpoints: [member.clientUrl] });
    try {
      assert.equal(await headRevision(restoredClient), expectedRevision);
      assert.deepEqual(await allKeys(restoredClient), await allKeys(client, expectedRevision));
    } finally {
      restoredClient.close();
      await member.stop();
    }
  }
});
