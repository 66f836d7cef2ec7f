/**
 * HA restore against real etcds: three restores with etcd's member flags build the data dirs of a new
 * three-member cluster that starts and serves the source's data at the target revision on every
 * member; --snapshot-out writes one snapshot db at the target revision.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { UsageError } from '../../src/errors.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { ETCDCTL_BINARY, startLocalEtcd, type LocalEtcd } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { allKeys, comparableKeys, writeMixedWorkload } from '../helpers/workload.js';

const run = promisify(execFile);
const logger = silentLogger();
let store: LocalStore;
let work: string;
let head: number;

const suite = etcdSuite(async () => {
  work = await suite.tempDir('restore-ha-');
  store = new LocalStore(join(work, 'store'));
  const client = suite.writer;
  const lease = await client.leaseClient.leaseGrant({ TTL: 600, ID: 0 });
  await client.kv.put({ key: Buffer.from('ha/leased'), value: Buffer.from('x'), lease: lease.ID });
  await saveFullSnapshot(suite.source, store, work);
  await writeMixedWorkload(client, 'ha/w/', 300, 3);
  head = await archiveDeltas(suite.source, store);
});

/** `count` ports that were free at once (all held open together, so none repeats). */
async function distinctPorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map((server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}


test('three restores with member flags make a three-member cluster; every member serves the source at the target revision', async () => {
  const ports = await distinctPorts(9);
  const members = ['m0', 'm1', 'm2'].map((name, i) => ({
    name,
    ports: { client: ports[3 * i]!, peer: ports[3 * i + 1]!, metrics: ports[3 * i + 2]! },
  }));
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.ports.peer}`).join(',');
  for (const member of members) {
    const result = await restoreBackup({
      store,
      dataDir: join(work, member.name),
      name: member.name,
      peerUrl: `http://127.0.0.1:${member.ports.peer}`,
      initialCluster,
      initialClusterToken: 'ha-test',
      logger,
    });
    assert.equal(result.revision, head);
  }
  // A member of a three-member cluster is healthy only with a quorum: start them together.
  const started: LocalEtcd[] = await Promise.all(
    members.map((m) => startLocalEtcd({ dataDir: join(work, m.name), name: m.name, ports: m.ports, logFile: join(work, `${m.name}.log`) })),
  );
  for (const etcd of started) suite.defer(() => etcd.stop());

  const want = comparableKeys(await allKeys(suite.writer, head));
  for (const etcd of started) {
    const client = createEtcdClient({ endpoints: [etcd.clientUrl] });
    try {
      const { members: list } = await client.cluster.memberList({});
      assert.deepEqual(list.map((m) => m.name).sort(), ['m0', 'm1', 'm2'], `${etcd.name} sees the new cluster`);
      assert.equal(await headRevision(client), head, `${etcd.name} is at the target revision`);
      assert.deepEqual(comparableKeys(await allKeys(client)), want, `${etcd.name} serves the source's keys`);
      const { kvs } = await client.kv.range({ key: Buffer.from('ha/leased') });
      assert.notEqual(String(kvs[0]?.lease ?? '0'), '0', `${etcd.name} keeps the key on its lease`);
    } finally {
      client.close();
    }
  }
});

test('--snapshot-out writes one snapshot db at the target revision', async () => {
  const file = join(work, 'restored.db');
  const target = head - 5;
  const result = await restoreBackup({ store, snapshotOut: file, toRevision: target, logger });
  assert.equal(result.revision, target);
  const { stdout } = await run(ETCDCTL_BINARY, ['snapshot', 'status', file, '-w', 'json']);
  assert.equal((JSON.parse(stdout) as { revision: number }).revision, target);
  await assert.rejects(restoreBackup({ store, snapshotOut: file, logger }), /exists; refusing to overwrite it/);
});

test('member flags that do not name this member are refused before anything is done', async () => {
  await assert.rejects(
    restoreBackup({ store, dataDir: join(work, 'x'), name: 'a', peerUrl: 'http://127.0.0.1:1', initialCluster: 'b=http://127.0.0.1:2', logger }),
    (err: Error) => err instanceof UsageError && /must list this member as a=http:\/\/127.0.0.1:1/.test(err.message),
  );
  await assert.rejects(restoreBackup({ store, logger }), /give --data-dir, --snapshot-out or both/);
});
