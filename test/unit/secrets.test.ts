import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EtcdBackupSpec } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { decodeEncryptionKey, referencedSecrets, resolveSecrets, type SecretData } from '../../src/controller/secrets.js';

const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');

function spec(overrides: Partial<EtcdBackupSpec> = {}): EtcdBackupSpec {
  return {
    etcd: { endpoints: ['https://etcd:2379'], tlsSecretRef: { name: 'tls' }, credentialsSecretRef: { name: 'auth' } },
    store: { s3: { bucket: 'backups', credentialsSecretRef: { name: 's3' } } },
    fullSnapshot: { schedule: '@hourly', compression: 'gzip', timeout: '15m' },
    deltaSnapshot: { period: '20s', chunkRevisions: 1000, chunkParallelism: 4 },
    memory: { budget: '128Mi' },
    retention: { policy: 'LimitBased', maxFullSnapshots: 7 },
    encryption: { keySecretRef: { name: 'key' } },
    suspend: false,
    runner: 'operator',
    deletionPolicy: 'Retain',
    ...overrides,
  };
}

const KEY = Buffer.alloc(32, 7);
const complete: Record<string, SecretData> = {
  tls: { resourceVersion: '1', data: { 'ca.crt': b64('CA'), 'tls.crt': b64('CERT'), 'tls.key': b64('KEY') } },
  auth: { resourceVersion: '2', data: { username: b64('root'), password: b64('hunter2') } },
  s3: { resourceVersion: '3', data: { accessKeyId: b64('AKID'), secretAccessKey: b64('s3cr3t') } },
  key: { resourceVersion: '4', data: { key: b64(KEY.toString('hex')) } },
};

test('referencedSecrets names every Secret with its field', () => {
  assert.deepEqual(referencedSecrets(spec()), [
    { name: 'tls', field: 'spec.etcd.tlsSecretRef' },
    { name: 'auth', field: 'spec.etcd.credentialsSecretRef' },
    { name: 's3', field: 'spec.store.s3.credentialsSecretRef' },
    { name: 'key', field: 'spec.encryption.keySecretRef' },
  ]);
});

test('resolveSecrets (table)', async () => {
  const cases: Array<{
    name: string;
    secrets: Record<string, SecretData | undefined>;
    problems: Array<[reason: string, includes: string]>;
  }> = [
    { name: 'all present', secrets: complete, problems: [] },
    { name: 'missing tls', secrets: { ...complete, tls: undefined }, problems: [['SecretNotFound', 'Secret ns/tls (spec.etcd.tlsSecretRef) not found']] },
    {
      name: 'missing password and key id',
      secrets: { ...complete, auth: { data: { username: b64('root') } }, s3: { data: { secretAccessKey: b64('x') } } },
      problems: [
        ['SecretInvalid', 'ns/auth (spec.etcd.credentialsSecretRef) has no password'],
        ['SecretInvalid', 'ns/s3 (spec.store.s3.credentialsSecretRef) has no accessKeyId'],
      ],
    },
    { name: 'cert without key', secrets: { ...complete, tls: { data: { 'tls.crt': b64('C') } } }, problems: [['SecretInvalid', 'tls.crt and tls.key together']] },
    { name: 'short encryption key', secrets: { ...complete, key: { data: { key: b64('short') } } }, problems: [['SecretInvalid', 'it holds 5 bytes']] },
    {
      name: 'passphrase as encryption key',
      secrets: { ...complete, key: { data: { key: b64('a passphrase of 32 characters!!!') } } },
      problems: [['SecretInvalid', 'looks like a passphrase, not a key']],
    },
  ];
  for (const c of cases) {
    const result = await resolveSecrets('ns', spec(), async (_ns, name) => c.secrets[name]);
    assert.equal(result.problems.length, c.problems.length, c.name);
    c.problems.forEach(([reason, includes], i) => {
      assert.equal(result.problems[i]!.reason, reason, c.name);
      assert.ok(result.problems[i]!.message.includes(includes), `${c.name}: ${result.problems[i]!.message}`);
    });
    const messages = JSON.stringify(result.problems);
    for (const value of ['hunter2', 's3cr3t', 'AKID', 'KEY', KEY.toString('hex')]) {
      assert.ok(!messages.includes(value), `${c.name}: problem messages leak a secret value`);
    }
  }
  const ok = await resolveSecrets('ns', spec(), async (_ns, name) => complete[name]);
  assert.deepEqual(ok.versions, { tls: '1', auth: '2', s3: '3', key: '4' });
  assert.equal(ok.secrets.etcdAuth?.password, 'hunter2');
  assert.equal(ok.secrets.s3Credentials?.accessKeyId, 'AKID');
  assert.equal(ok.secrets.etcdTls?.cert?.toString(), 'CERT');
  assert.deepEqual(ok.secrets.encryptionKey, KEY);
});

test('decodeEncryptionKey accepts raw, hex and base64; rejects the rest', () => {
  const cases: Array<[string, Buffer, boolean]> = [
    ['raw', KEY, true],
    ['hex', Buffer.from(KEY.toString('hex') + '\n'), true],
    ['base64', Buffer.from(KEY.toString('base64')), true],
    ['too short', Buffer.from('abc'), false],
    ['hex of 8 bytes', Buffer.from(Buffer.alloc(8).toString('hex')), false],
  ];
  for (const [name, input, ok] of cases) {
    const key = decodeEncryptionKey(input);
    assert.equal(key !== undefined, ok, name);
    if (key) assert.deepEqual(key, KEY, name);
  }
});
