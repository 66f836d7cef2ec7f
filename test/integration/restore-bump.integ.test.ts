/**
 * Kubernetes-safe revisions: `restore --bump-revision N --mark-compacted` with etcd 3.5/3.6's etcdutl
 * makes the restored member start N revisions past the restored one, compacted there, so watches
 * from older revisions fail instead of silently missing events; 3.4's tools get a clear error.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import { etcdTools, skipUnlessBuilt } from '../harness/test-tools.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { allKeys, comparableKeys, writeMixedWorkload } from '../helpers/workload.js';

const logger = silentLogger();
const BUMP = 1_000_000;
let store: LocalStore;
let work: string;
let head: number;

const suite = etcdSuite(async () => {
  work = await suite.tempDir('restore-bump-');
  store = new LocalStore(join(work, 'store'));
  await suite.writer.put('bump/seed').value('x');
  await saveFullSnapshot(suite.source, store, work);
  await writeMixedWorkload(suite.writer, 'bump/w/', 200, 5);
  head = await archiveDeltas(suite.source, store);
});

for (const minor of ['3.5', '3.6'] as const) {
  const tools = etcdTools(minor);
  test(`etcd ${minor}: --bump-revision ${BUMP} --mark-compacted starts the member past the restored revision, compacted there`, { skip: skipUnlessBuilt(tools, `etcd ${minor}`) }, async () => {
    const dataDir = join(work, `bumped-${minor}`);
    const target = head - 3;
    const result = await restoreBackup({ store, dataDir, toRevision: target, bumpRevision: BUMP, markCompacted: true, tools: tools!, logger });
    assert.equal(result.revision, target);
    const member = await startLocalEtcd({ dataDir, binary: tools!.etcd, logFile: `${dataDir}.log` });
    const client = createEtcdClient({ endpoints: [member.clientUrl] });
    try {
      assert.equal(await headRevision(client), target + BUMP, 'revisions went forward by the bump');
      assert.deepEqual(comparableKeys(await allKeys(client), { modRevision: false }), comparableKeys(await allKeys(suite.writer, target), { modRevision: false }), 'the data is the source at the target');
      // Marked compacted: a client resuming a watch from an old revision is told to relist.
      await assert.rejects(client.kv.range({ key: Buffer.from('bump/seed'), revision: String(target) }), /compacted/);
    } finally {
      client.close();
      await member.stop();
    }
  });
}

test('--bump-revision with etcd 3.4 tools is a clear usage error', async () => {
  const tools = etcdTools('3.4')!;
  await assert.rejects(
    restoreBackup({ store, dataDir: join(work, 'bump-34'), bumpRevision: 10, markCompacted: true, tools, logger }),
    (err: Error) => err instanceof UsageError && /--bump-revision needs etcdutl 3\.5\.10 or newer .* the restore tool found is etcdctl 3\.4/.test(err.message),
  );
  await assert.rejects(
    restoreBackup({ store, dataDir: join(work, 'bump-x'), bumpRevision: 10, logger }),
    /give --bump-revision N and --mark-compacted together/,
  );
});
