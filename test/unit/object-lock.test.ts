import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { ObjectLockedError, UsageError } from '../../src/errors.js';
import { deleteUnlessLocked } from '../../src/store/delete-unless-locked.js';
import { parseStoreUrl } from '../../src/store/factory.js';
import {
  defaultRetentionMs,
  describeLocked,
  isLocked,
  retainUntil,
  retentionStatus,
  summariseLocked,
} from '../../src/store/object-lock.js';
import { storeConfigFromSpec } from '../../src/store/spec-config.js';

const HOUR = 3_600_000;

function spec(objectLock: unknown): unknown {
  return {
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'main' },
    spec: { etcd: { endpoints: ['http://127.0.0.1:2379'] }, store: { s3: { bucket: 'backups', objectLock } } },
  };
}

test('spec.store.s3.objectLock: valid settings reach the store config', () => {
  const result = validateEtcdBackup(spec({ mode: 'COMPLIANCE', retainFor: '720h' }));
  assert.ok(result.ok, JSON.stringify(result));
  const config = storeConfigFromSpec(result.resolved.spec.store);
  assert.equal(config.kind, 's3');
  assert.deepEqual(config.kind === 's3' && config.objectLock, { mode: 'COMPLIANCE', retainForMs: 720 * HOUR });
});

for (const [name, lock, problem] of [
  ['an unknown mode', { mode: 'LEGAL', retainFor: '1h' }, /spec\.store\.s3\.objectLock\.mode: must be one of GOVERNANCE, COMPLIANCE/],
  ['a duration that is not one', { mode: 'GOVERNANCE', retainFor: '30d' }, /spec\.store\.s3\.objectLock\.retainFor: "30d" is not a duration of at least 1s/],
  ['a zero duration', { mode: 'GOVERNANCE', retainFor: '0' }, /retainFor: "0" is not a duration of at least 1s/],
  ['a missing duration', { mode: 'GOVERNANCE' }, /spec\.store\.s3\.objectLock\.retainFor: required/],
] as const) {
  test(`spec.store.s3.objectLock: ${name} is a one-line spec problem`, () => {
    const result = validateEtcdBackup(spec(lock));
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.problems.some((p) => problem.test(p)), JSON.stringify(!result.ok && result.problems));
  });
}

test('store URL: objectLockMode and objectLockRetainFor give the same settings; one alone or a bad value is a usage error', () => {
  const config = parseStoreUrl('s3://b/p?objectLockMode=GOVERNANCE&objectLockRetainFor=36h');
  assert.deepEqual(config.kind === 's3' && config.objectLock, { mode: 'GOVERNANCE', retainForMs: 36 * HOUR });
  assert.equal((parseStoreUrl('s3://b/p') as { objectLock?: unknown }).objectLock, undefined);
  assert.throws(() => parseStoreUrl('s3://b/p?objectLockMode=GOVERNANCE'), (err: unknown) => {
    return err instanceof UsageError && /objectLockMode and objectLockRetainFor go together/.test(err.message);
  });
  assert.throws(() => parseStoreUrl('s3://b/p?objectLockMode=governance&objectLockRetainFor=1h'), /must be one of GOVERNANCE, COMPLIANCE/);
  assert.throws(() => parseStoreUrl('s3://b/p?objectLockMode=COMPLIANCE&objectLockRetainFor=1y'), /"1y" is not a duration/);
});

test('retain-until dates, bucket default rules and the lock test', () => {
  const now = new Date('2026-12-04T00:00:00Z');
  assert.equal(retainUntil({ mode: 'COMPLIANCE', retainForMs: 2 * HOUR }, now).toISOString(), '2026-12-04T02:00:00.000Z');
  assert.equal(defaultRetentionMs({ Days: 2 }), 48 * HOUR);
  assert.equal(defaultRetentionMs({ Years: 1 }), 365 * 24 * HOUR);
  assert.equal(defaultRetentionMs(undefined), undefined);
  assert.equal(isLocked({ mode: 'GOVERNANCE', retainUntil: new Date(now.getTime() + 1) }, now), true);
  assert.equal(isLocked({ mode: 'GOVERNANCE', retainUntil: now }, now), false, 'a lock that ends now has ended');
  assert.equal(isLocked(undefined, now), false);
  assert.deepEqual(retentionStatus({ mode: 'COMPLIANCE', retainUntil: now }), {
    retainUntil: '2026-12-04T00:00:00.000Z',
    retentionMode: 'COMPLIANCE',
  });
  assert.deepEqual(retentionStatus(undefined), {}, 'no lock, no status fields');
});

test('deleteUnlessLocked deletes the rest and reports locked objects; describeLocked names them and the latest date', async () => {
  const until = (day: number): Date => new Date(Date.UTC(2027, 0, day));
  const locks = new Map([
    ['full/b', until(3)],
    ['delta/a', until(9)],
  ]);
  const deleted: string[] = [];
  const store = {
    async delete(key: string): Promise<void> {
      const lock = locks.get(key);
      if (lock) throw new ObjectLockedError(key, lock, 'COMPLIANCE', 's3://backups/x');
      deleted.push(key);
    },
  };
  const locked = await deleteUnlessLocked(store, ['full/a', 'full/b', 'delta/a', 'delta/b'], 2);
  assert.deepEqual(deleted.sort(), ['delta/b', 'full/a']);
  assert.deepEqual(locked, [
    { key: 'delta/a', retainUntil: until(9) },
    { key: 'full/b', retainUntil: until(3) },
  ]);
  assert.equal(
    describeLocked(summariseLocked(locked)),
    '2 objects are under S3 Object Lock until 2027-01-09T00:00:00.000Z and could not be deleted: delta/a, full/b',
  );
  assert.match(describeLocked(summariseLocked(locked, 1)), /: delta\/a, and 1 more$/);

  const failing = { delete: (): Promise<void> => Promise.reject(new Error('unreachable')) };
  await assert.rejects(deleteUnlessLocked(failing, ['x']), /unreachable/);
});
