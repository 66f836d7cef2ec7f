/**
 * Encryption downgrade (issue #14, defect 2): someone who can write to an encrypted store plants
 * plaintext objects with a matching sha256. With the key given, restore and verify refuse them,
 * naming each; with --allow-unencrypted they proceed. Real etcd, real local store, the CLI as a
 * user runs it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { headRevision } from '../../src/etcd/client.js';
import { encodeDeltaStream, type DeltaEvent } from '../../src/archive/delta-format.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { LocalStore } from '../../src/store/local-store.js';
import { deltaKey } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { runCli, type CliResult } from '../helpers/cli.js';

const KEY = randomBytes(32);

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'encryption-downgrade-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function errorLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line.startsWith('etcd-backup:'));
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a planted plaintext full snapshot is refused when keys are given; --allow-unencrypted restores it', { timeout: 120_000 }, async () => {
  const client = etcd.client();
  const storeDir = join(work, 'store-full');
  const store = new LocalStore(storeDir);
  const keyFile = join(work, 'key');
  await writeFile(keyFile, KEY.toString('hex'));
  await client.put('real').value('1');
  const encrypted = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip', encryptionKey: KEY });
  assert.ok(encrypted.key.endsWith('.enc'));
  await client.put('planted').value('by someone with write access to the store');
  // Without a key: plaintext, a higher revision, and the store records its (matching) sha256.
  const planted = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'none' });
  assert.ok(planted.revision > encrypted.revision && !planted.key.endsWith('.enc'));

  const refusedDir = join(work, 'restored-refused');
  const refused = await runCli(['restore', '--store', `file://${storeDir}`, '--data-dir', refusedDir, '--encryption-key-file', keyFile]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(errorLines(refused).length, 1, refused.stderr);
  assert.match(errorLines(refused)[0]!, new RegExp(`not encrypted although encryption keys were given: ${escape(planted.key)} .*--allow-unencrypted`));

  const verifyRefused = await runCli(['verify', '--store', `file://${storeDir}`, '--encryption-key-file', keyFile]);
  assert.equal(verifyRefused.code, 1, verifyRefused.stderr);
  assert.match(errorLines(verifyRefused)[0]!, new RegExp(escape(planted.key)));

  const allowedDir = join(work, 'restored-allowed');
  const allowed = await runCli(['restore', '--store', `file://${storeDir}`, '--data-dir', allowedDir, '--encryption-key-file', keyFile, '--allow-unencrypted']);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, new RegExp(`restored ${escape(planted.key)} into .*: revision ${planted.revision}\\b`));
});

test('a planted plaintext delta after an encrypted full snapshot is refused when keys are given', { timeout: 120_000 }, async () => {
  const client = etcd.client();
  const storeDir = join(work, 'store-delta');
  const store = new LocalStore(storeDir);
  const keyFile = join(work, 'key-delta');
  await writeFile(keyFile, KEY.toString('base64'));
  const full = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'none', encryptionKey: KEY });
  await client.put('planted-delta').value('x');
  const rev = await headRevision(client);
  assert.equal(rev, full.revision + 1);
  const kv = (await client.get('planted-delta').exec()).kvs[0]!;
  const event: DeltaEvent = {
    rev,
    type: 'PUT',
    key: Buffer.from('planted-delta'),
    value: Buffer.from('x'),
    createRev: Number(kv.create_revision),
    modRev: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: '0',
  };
  const key = deltaKey(rev, rev, { compression: 'none', encrypted: false });
  await store.put(key, encodeDeltaStream([event], 'none'));

  const refused = await runCli(['restore', '--store', `file://${storeDir}`, '--data-dir', join(work, 'delta-refused'), '--encryption-key-file', keyFile]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(errorLines(refused)[0]!, new RegExp(`not encrypted although encryption keys were given: ${escape(key)} `));

  const allowed = await runCli(['restore', '--store', `file://${storeDir}`, '--data-dir', join(work, 'delta-allowed'), '--encryption-key-file', keyFile, '--allow-unencrypted']);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, new RegExp(`revision ${rev}\\b`));
});
