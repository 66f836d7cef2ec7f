/**
 * `verify --endpoints` finds every kind of difference between a backup and the live cluster.
 *
 * verify compares at the backup's revision (later writes do not matter, see full-snapshot.integ), so
 * a difference is a live cluster whose history UP TO that revision is not what was backed up: a
 * lost or altered event. Two etcds get the same writes, revision for revision, except for one
 * change per key below; the backup is of the first, the second plays the live cluster:
 * - value/k: one value differs;
 * - revs/k: deleted and re-created in the live history (create and mod revision differ);
 * - ver/k: one put fewer in the live history (version differs, value and revisions equal);
 * - added: only in the live cluster; gone: only in the backup.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { headRevision } from '../../src/etcd/client.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { LocalStore } from '../../src/store/local-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { runCli } from '../helpers/cli.js';

let backedUp: TestEtcd;
let live: TestEtcd;
let work: string;

before(async () => {
  [backedUp, live] = await Promise.all([startTestEtcd(), startTestEtcd()]);
  work = await mkdtemp(join(tmpdir(), 'verify-differences-'));
});

after(async () => {
  await Promise.all([backedUp?.stop(), live?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

type Step = (client: Etcd3) => Promise<unknown>;
const put = (key: string, value: string): Step => (client) => client.put(key).value(value).exec();
const del = (key: string): Step => (client) => client.delete().key(key).exec();

/** Applies one step to each cluster (the same step when only one is given); their revisions stay aligned. */
async function both(a: Step, b: Step = a): Promise<void> {
  await a(backedUp.client());
  await b(live.client());
  assert.equal(await headRevision(live.client()), await headRevision(backedUp.client()), 'the two histories stay revision-aligned');
}

test('verify --endpoints reports a changed value, create/mod revision and version, an added and a removed key, and exits 1', async () => {
  await both(put('base/a', '1'));
  await both(put('value/k', 'backed-up'), put('value/k', 'live'));
  const revsCreated = await headRevision(backedUp.client()) + 1;
  await both(put('revs/k', '1'));
  await both(put('revs/tmp', '1'), del('revs/k'));
  await both(del('revs/tmp'), put('revs/k', '1'));
  await both(put('ver/k', '1'));
  await both(put('ver/k', '2'), put('ver/tmp', '1'));
  await both(put('ver/k', '3'), (client) => client.if('ver/k', 'Version', '>', 0).then(client.put('ver/k').value('3'), client.delete().key('ver/tmp')).commit());
  await both(put('gone', '1'), put('added', '1'));
  await both(put('base/b', '2'));
  const revision = await headRevision(backedUp.client());

  const storeDir = join(work, 'store');
  const snapshot = await takeFullSnapshot({ client: backedUp.client(), endpoints: [backedUp.clientUrl], store: new LocalStore(storeDir), compression: 'gzip' });
  assert.equal(snapshot.revision, revision);
  const verify = (endpoint: string) => runCli(['verify', '--store', `file://${storeDir}`, '--endpoints', endpoint, '--log-level', 'error']);

  // The cluster that was backed up matches: the differences below come from the live history only.
  const same = await verify(backedUp.clientUrl);
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /^live-comparison MATCH$/m);

  const differs = await verify(live.clientUrl);
  assert.equal(differs.code, 1, `exit code 1 on a mismatch (stderr: ${differs.stderr})`);
  assert.match(differs.stdout, /^live-comparison MISMATCH$/m);
  const reported = differs.stdout.split('\n').filter((line) => line.startsWith('  ')).map((line) => line.trim());
  assert.deepEqual(reported, [
    'key "added" is in the live cluster but not in the backup',
    'key "gone" is in the backup but not in the live cluster',
    `key "revs/k" differs (createRevision ${revsCreated} vs ${revsCreated + 2}, modRevision ${revsCreated} vs ${revsCreated + 2})`,
    'key "value/k" differs (value)',
    'key "ver/k" differs (version 3 vs 2)',
  ]);
  assert.match(differs.stderr, new RegExp(`backup at revision ${revision} differs from the live cluster`));
  // Both clusters hold 6 keys at the revision; the live one has "added" instead of "gone".
  assert.match(differs.stdout, /^live-keys 6$/m);
});
