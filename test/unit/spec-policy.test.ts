import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import type { EtcdBackupSpec } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { DEFAULT_POLICY, imageAllowed, policyProblems, type OperatorPolicy } from '../../src/controller/spec-policy.js';

const DEFAULT_IMAGE = 'registry.example/etcd-backup:1.0';

/** A defaulted spec (through the real validation), S3 with its own credentials over TLS, plus overrides. */
function spec(overrides: Partial<EtcdBackupSpec> = {}): EtcdBackupSpec {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'policy' },
    spec: { etcd: { endpoints: ['https://etcd:2379'] }, store: { s3: { bucket: 'backups', endpoint: 'https://s3.example', credentialsSecretRef: { name: 's3' } } } },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  return { ...validation.resolved.spec, ...overrides };
}

const problems = (s: EtcdBackupSpec, policy: Partial<OperatorPolicy> = {}) => policyProblems(s, { ...DEFAULT_POLICY, ...policy }, DEFAULT_IMAGE);

describe('operator policy for EtcdBackup specs', () => {
  test('an S3 store with its own credentials over TLS is allowed by the defaults', () => {
    assert.deepEqual(problems(spec()), []);
  });

  test('spec.pod.image: only the default image and the allow-list', () => {
    const pod = (image: string) => spec({ runner: 'pod', pod: { image } });
    assert.deepEqual(problems(pod(DEFAULT_IMAGE)), []);
    assert.deepEqual(problems(spec({ runner: 'pod', pod: {} })), []);
    const [problem, ...rest] = problems(pod('evil.example/miner:latest'));
    assert.match(problem ?? '', /^spec\.pod\.image: "evil\.example\/miner:latest" is not allowed.*--allowed-worker-images/);
    assert.deepEqual(rest, []);
    assert.deepEqual(problems(pod('registry.example/etcd-backup:1.1'), { allowedWorkerImages: ['registry.example/etcd-backup:*'] }), []);
    assert.deepEqual(problems(pod('mirror.example/etcd-backup:1.0'), { allowedWorkerImages: ['mirror.example/etcd-backup:1.0'] }), []);
    assert.equal(imageAllowed('registry.example/etcd-backup-evil:1', DEFAULT_IMAGE, ['registry.example/etcd-backup:*']), false);
  });

  test("S3 without credentialsSecretRef borrows the operator's identity: only with --allow-ambient-credentials", () => {
    const ambient = spec({ store: { s3: { bucket: 'backups' } } });
    assert.match(problems(ambient).join('\n'), /^spec\.store\.s3\.credentialsSecretRef: required.*--allow-ambient-credentials/);
    assert.deepEqual(problems(ambient, { allowAmbientCredentials: true }), []);
  });

  test('a local store only with --allow-local-store', () => {
    const local = spec({ store: { local: { path: '/var/backups/etcd/x' } } });
    assert.match(problems(local).join('\n'), /^spec\.store\.local: not allowed.*--allow-local-store/);
    assert.deepEqual(problems(local, { allowLocalStore: true }), []);
  });

  test('etcd credentials over http:// only with spec.etcd.insecure (or TLS settings)', () => {
    const etcd = (extra: Partial<EtcdBackupSpec['etcd']>) =>
      spec({ etcd: { endpoints: ['https://a:2379', 'http://b:2379'], credentialsSecretRef: { name: 'auth' }, ...extra } });
    assert.match(problems(etcd({})).join('\n'), /^spec\.etcd\.credentialsSecretRef: .*unencrypted to http:\/\/b:2379.*spec\.etcd\.insecure: true/);
    assert.deepEqual(problems(etcd({ insecure: true })), []);
    assert.deepEqual(problems(etcd({ tlsSecretRef: { name: 'tls' } })), []);
    assert.deepEqual(problems(spec({ etcd: { endpoints: ['http://b:2379'] } })), [], 'no credentials, nothing to leak');
  });

  test('S3 credentials to an http:// endpoint only with spec.store.s3.insecure', () => {
    const s3 = (insecure?: boolean) =>
      spec({ store: { s3: { bucket: 'b', endpoint: 'http://minio:9000', credentialsSecretRef: { name: 's3' }, ...(insecure ? { insecure } : {}) } } });
    assert.match(problems(s3()).join('\n'), /^spec\.store\.s3\.credentialsSecretRef: .*http:\/\/minio:9000 without TLS.*spec\.store\.s3\.insecure: true/);
    assert.deepEqual(problems(s3(true)), []);
  });
});
