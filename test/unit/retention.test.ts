import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyKeys, deltaKey, fullSnapshotKey, type Encoding } from '../../src/store/naming.js';
import { planRetention, type RetentionPolicy } from '../../src/store/retention.js';

const plain: Encoding = { compression: 'none', encrypted: false };
const full = (rev: number): string => fullSnapshotKey(rev, new Date(1_700_000_000_000 + rev * 1000), plain);
const delta = (from: number, to: number): string => deltaKey(from, to, plain);
const limit = (maxFullSnapshots: number): RetentionPolicy => ({ policy: 'LimitBased', maxFullSnapshots });

const cases: Array<{ name: string; keys: string[]; policy: RetentionPolicy; keep: number[]; deleteKeys: string[] }> = [
  {
    name: 'keeps the newest N full snapshots and the deltas after the oldest kept',
    keys: [full(100), full(200), full(300), full(400), delta(301, 350), delta(351, 420)],
    policy: limit(2),
    keep: [300, 400],
    deleteKeys: [full(100), full(200)],
  },
  {
    name: 'deletes deltas ending before or exactly at the oldest kept revision, keeps one that spans it',
    keys: [
      full(100),
      full(200),
      full(300),
      delta(50, 99),
      delta(101, 200),
      delta(201, 250),
      delta(251, 300),
      delta(280, 320),
      delta(301, 400),
    ],
    policy: limit(1),
    keep: [300],
    deleteKeys: [full(100), full(200), delta(50, 99), delta(101, 200), delta(201, 250), delta(251, 300)],
  },
  {
    name: 'a delta that starts before the oldest kept and ends after it is kept',
    keys: [full(100), full(200), delta(150, 201)],
    policy: limit(1),
    keep: [200],
    deleteKeys: [full(100)],
  },
  {
    name: 'no full snapshot: nothing is deleted, not even deltas',
    keys: [delta(1, 100), delta(101, 200)],
    policy: limit(1),
    keep: [],
    deleteKeys: [],
  },
  {
    name: 'empty listing',
    keys: [],
    policy: limit(3),
    keep: [],
    deleteKeys: [],
  },
  {
    name: 'maxFullSnapshots larger than the count keeps every full snapshot',
    keys: [full(100), full(200), delta(1, 99), delta(101, 150)],
    policy: limit(10),
    keep: [100, 200],
    // The delta before the oldest full is already contained in it.
    deleteKeys: [delta(1, 99)],
  },
  {
    name: 'maxFullSnapshots equal to the count keeps every full snapshot',
    keys: [full(100), full(200), full(300)],
    policy: limit(3),
    keep: [100, 200, 300],
    deleteKeys: [],
  },
  {
    name: 'maxFullSnapshots 0 still keeps the newest one',
    keys: [full(100), full(200)],
    policy: limit(0),
    keep: [200],
    deleteKeys: [full(100)],
  },
];

for (const c of cases) {
  test(`planRetention: ${c.name}`, () => {
    const plan = planRetention(classifyKeys(c.keys), c.policy);
    assert.deepEqual(
      plan.keep.map((f) => f.revision),
      c.keep,
    );
    assert.deepEqual(plan.deleteKeys, c.deleteKeys);
    // Never both keep and delete the same object.
    const kept = new Set(plan.keep.map((f) => f.key));
    assert.ok(plan.deleteKeys.every((key) => !kept.has(key)), 'a kept snapshot is also deleted');
  });
}

test('planRetention: the newest of two snapshots at the same revision is the one kept', () => {
  const older = fullSnapshotKey(500, new Date(1_700_000_000_000), plain);
  const newer = fullSnapshotKey(500, new Date(1_700_000_600_000), plain);
  const plan = planRetention(classifyKeys([newer, older]), limit(1));
  assert.deepEqual(
    plan.keep.map((f) => f.key),
    [newer],
  );
  assert.deepEqual(plan.deleteKeys, [older]);
});

test('planRetention: Exponential is refused rather than guessed', () => {
  assert.throws(
    () => planRetention(classifyKeys([full(1)]), { policy: 'Exponential', maxFullSnapshots: 3 }),
    RangeError,
  );
});
