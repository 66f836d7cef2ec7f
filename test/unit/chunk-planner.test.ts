import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planChunks } from '../../src/engine/chunk-planner.js';
import { advanceContiguous, mergeRanges, recoverArchivedRevision, type RevisionRange } from '../../src/archive/revision-ranges.js';
import { minimumDeltaBudgetBytes, planFetchBudget } from '../../src/budget/fetch-budget.js';
import { ENCRYPT_STREAM_BYTES } from '../../src/crypto/encryption.js';
import { DeltaGapError, planDeltas } from '../../src/restore/delta-replay.js';
import { classifyKeys, deltaKey, fullSnapshotKey, type Encoding } from '../../src/archive/naming.js';

const r = (fromRevision: number, toRevision: number): RevisionRange => ({ fromRevision, toRevision });
const plain: Encoding = { compression: 'none', encrypted: false };
const full = (rev: number): string => fullSnapshotKey(rev, new Date(1_700_000_000_000 + rev * 1000), plain);
const delta = (from: number, to: number, encoding: Encoding = plain): string => deltaKey(from, to, encoding);

test('planChunks', async (t) => {
  const cases: Array<{ name: string; archived: number; head: number; size: number; covered?: RevisionRange[]; want: RevisionRange[] }> = [
    { name: 'nothing new', archived: 10, head: 10, size: 5, want: [] },
    { name: 'head behind', archived: 10, head: 8, size: 5, want: [] },
    { name: 'one short chunk', archived: 10, head: 12, size: 5, want: [r(11, 12)] },
    { name: 'exact multiple', archived: 0, head: 10, size: 5, want: [r(1, 5), r(6, 10)] },
    { name: 'remainder', archived: 100, head: 111, size: 5, want: [r(101, 105), r(106, 110), r(111, 111)] },
    { name: 'chunk of one', archived: 3, head: 5, size: 1, want: [r(4, 4), r(5, 5)] },
    {
      name: 'skips covered ranges past a gap',
      archived: 10,
      head: 30,
      size: 5,
      covered: [r(14, 18), r(25, 26)],
      want: [r(11, 13), r(19, 23), r(24, 24), r(27, 30)],
    },
    { name: 'covered reaches the head', archived: 10, head: 20, size: 100, covered: [r(15, 25)], want: [r(11, 14)] },
    { name: 'covered before archived is ignored', archived: 10, head: 12, size: 100, covered: [r(2, 9)], want: [r(11, 12)] },
    { name: 'covered beyond the head is ignored', archived: 10, head: 12, size: 100, covered: [r(20, 30)], want: [r(11, 12)] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.deepEqual(planChunks(c.archived, c.head, c.size, c.covered), c.want));
  }
  await t.test('rejects a chunk size below 1', () => assert.throws(() => planChunks(0, 5, 0), RangeError));
});

test('advanceContiguous', async (t) => {
  const cases: Array<{ name: string; archived: number; completed: RevisionRange[]; want: number; pending: RevisionRange[] }> = [
    { name: 'nothing uploaded', archived: 5, completed: [], want: 5, pending: [] },
    { name: 'adjacent in order', archived: 5, completed: [r(6, 10), r(11, 20)], want: 20, pending: [] },
    { name: 'out of order', archived: 5, completed: [r(11, 20), r(6, 10)], want: 20, pending: [] },
    { name: 'gap keeps the rest pending', archived: 5, completed: [r(7, 10), r(11, 20)], want: 5, pending: [r(7, 20)] },
    { name: 'first chunk partly uploaded', archived: 5, completed: [r(6, 8), r(12, 20)], want: 8, pending: [r(12, 20)] },
    { name: 'overlapping retry objects', archived: 5, completed: [r(6, 15), r(6, 9), r(10, 20)], want: 20, pending: [] },
    { name: 'object starting before archived', archived: 10, completed: [r(3, 14)], want: 14, pending: [] },
    { name: 'old objects ignored', archived: 10, completed: [r(3, 9), r(1, 10)], want: 10, pending: [] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const got = advanceContiguous(c.archived, c.completed);
      assert.equal(got.archivedRevision, c.want);
      assert.deepEqual(got.pending, c.pending);
    });
  }
});

test('mergeRanges merges overlaps and neighbours only', () => {
  assert.deepEqual(mergeRanges([r(5, 6), r(1, 2), r(3, 3), r(8, 9), r(9, 12)]), [r(1, 3), r(5, 6), r(8, 12)]);
});

test('pending ranges keep only revisions, not the uploaded segments they came from', () => {
  // The delta poller records uploaded segments (events included) here; a pending range past a gap
  // that kept the segment kept its events alive after the budget was released (issue 17).
  const segment = { fromRevision: 12, toRevision: 20, events: [Buffer.alloc(16)], bytes: 16 };
  const got = advanceContiguous(5, [segment]);
  assert.deepEqual(Object.keys(got.pending[0]!).sort(), ['fromRevision', 'toRevision']);
  assert.deepEqual(Object.keys(mergeRanges([segment])[0]!).sort(), ['fromRevision', 'toRevision']);
});

test('recoverArchivedRevision', async (t) => {
  const cases: Array<{ name: string; keys: string[]; want: number | undefined }> = [
    { name: 'empty store waits', keys: [], want: undefined },
    { name: 'deltas without a full snapshot wait', keys: [delta(1, 10)], want: undefined },
    { name: 'only a full snapshot: resume right after it', keys: [full(100)], want: 100 },
    { name: 'chain right after the snapshot', keys: [full(100), delta(101, 150), delta(151, 200)], want: 200 },
    { name: 'chain starting before the snapshot', keys: [full(100), delta(51, 120), delta(121, 130)], want: 130 },
    { name: 'chain from an older snapshot', keys: [full(10), delta(11, 60), full(40), delta(61, 90)], want: 90 },
    { name: 'gap after the snapshot', keys: [full(100), delta(101, 110), delta(115, 120)], want: 110 },
    { name: 'chain not reaching the newest snapshot', keys: [full(10), delta(11, 50), full(80)], want: 80 },
    { name: 'first delta starts after a gap', keys: [full(100), delta(102, 110)], want: 100 },
    {
      name: 'overlapping objects from a crash-retry',
      keys: [full(100), delta(101, 140), delta(101, 120), delta(121, 160), delta(141, 170)],
      want: 170,
    },
    { name: 'compressed and encrypted names count too', keys: [full(5), delta(6, 9, { compression: 'gzip', encrypted: true })], want: 9 },
    { name: 'unknown keys and .part files are not objects', keys: [full(5), 'delta/junk', `${delta(6, 9)}.part-abc`], want: 5 },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.equal(recoverArchivedRevision(classifyKeys(c.keys)), c.want));
  }
});

test('planDeltas', async (t) => {
  const names = (keys: string[]) => classifyKeys(keys).deltas;
  const cases: Array<{ name: string; keys: string[]; after: number; to: number; want: string[] }> = [
    { name: 'nothing to do', keys: [delta(1, 10)], after: 10, to: 10, want: [] },
    { name: 'single object', keys: [delta(1, 10)], after: 0, to: 10, want: [delta(1, 10)] },
    { name: 'object starting before the base', keys: [delta(1, 10), delta(11, 20)], after: 5, to: 12, want: [delta(1, 10), delta(11, 20)] },
    { name: 'stops at the target', keys: [delta(1, 10), delta(11, 20), delta(21, 30)], after: 0, to: 15, want: [delta(1, 10), delta(11, 20)] },
    {
      name: 'overlaps: the furthest-reaching object wins',
      keys: [delta(1, 5), delta(1, 12), delta(6, 10), delta(11, 20), delta(13, 20)],
      after: 0,
      to: 20,
      want: [delta(1, 12), delta(11, 20)],
    },
    { name: 'old objects are skipped', keys: [delta(1, 3), delta(4, 8), delta(9, 12)], after: 8, to: 12, want: [delta(9, 12)] },
    { name: 'single-revision objects, no hole', keys: [delta(1, 1), delta(2, 2), delta(3, 3)], after: 0, to: 3, want: [delta(1, 1), delta(2, 2), delta(3, 3)] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.deepEqual(planDeltas(names(c.keys), c.after, c.to).map((d) => d.key), c.want));
  }
  const FAR = '(no delta object reaches that far)';
  // `message`: what follows "the delta archive is missing ".
  const gaps: Array<{ name: string; keys: string[]; after: number; to: number; missing: [number, number]; message: string }> = [
    { name: 'hole between objects', keys: [delta(1, 10), delta(15, 20)], after: 0, to: 20, missing: [11, 14], message: 'revisions 11..14' },
    { name: 'hole before the first object', keys: [delta(5, 10)], after: 2, to: 10, missing: [3, 4], message: 'revisions 3..4' },
    { name: 'archive ends before the target', keys: [delta(1, 10)], after: 0, to: 13, missing: [11, 13], message: `revisions 11..13 ${FAR}` },
    { name: 'no objects at all', keys: [], after: 7, to: 9, missing: [8, 9], message: `revisions 8..9 ${FAR}` },
    { name: 'hole larger than the target', keys: [delta(1, 10), delta(30, 40)], after: 0, to: 20, missing: [11, 20], message: 'revisions 11..20' },
    // One-revision holes: an off-by-one in "starts at or before reached + 1" would bridge each of these.
    { name: 'one-revision hole between objects', keys: [delta(1, 10), delta(12, 20)], after: 0, to: 20, missing: [11, 11], message: 'revision 11' },
    { name: 'one-revision hole right after the base', keys: [delta(7, 10)], after: 5, to: 10, missing: [6, 6], message: 'revision 6' },
    { name: 'one-revision hole after overlapping objects', keys: [delta(1, 8), delta(3, 10), delta(12, 15)], after: 0, to: 15, missing: [11, 11], message: 'revision 11' },
    { name: 'one-revision hole before single-revision objects', keys: [delta(1, 1), delta(2, 2), delta(4, 4)], after: 0, to: 4, missing: [3, 3], message: 'revision 3' },
    { name: 'the archive ends one revision short', keys: [delta(1, 10)], after: 0, to: 11, missing: [11, 11], message: `revision 11 ${FAR}` },
  ];
  for (const c of gaps) {
    await t.test(`gap: ${c.name}`, () => {
      assert.throws(
        () => planDeltas(names(c.keys), c.after, c.to),
        (err: unknown) => {
          assert.ok(err instanceof DeltaGapError);
          assert.deepEqual([err.missingFrom, err.missingTo], c.missing);
          assert.equal(err.message, `the delta archive is missing ${c.message}`);
          return true;
        },
      );
    });
  }
});

test('planDeltas: the choice does not depend on the order of the listing', async (t) => {
  const names = (keys: string[]) => classifyKeys(keys).deltas;
  const gz = { compression: 'gzip', encrypted: false } as const;
  const cases: Array<{ name: string; keys: string[]; after: number; to: number; want: string[] }> = [
    { name: 'a later start that reaches further wins', keys: [delta(1, 8), delta(3, 12)], after: 5, to: 12, want: [delta(3, 12)] },
    { name: 'reverse order', keys: [delta(11, 20), delta(6, 10), delta(1, 5)], after: 0, to: 20, want: [delta(1, 5), delta(6, 10), delta(11, 20)] },
    { name: 'same range twice: the first key in key order', keys: [delta(1, 10, gz), delta(1, 10)], after: 0, to: 10, want: [delta(1, 10)] },
  ];
  for (const c of cases) {
    for (const order of ['listed', 'reversed'] as const) {
      await t.test(`${c.name} (${order})`, () => {
        const input = order === 'listed' ? names(c.keys) : names(c.keys).reverse();
        assert.deepEqual(planDeltas(input, c.after, c.to).map((d) => d.key), c.want);
      });
    }
  }
  await t.test('an archive that ends early says no object reaches that far', () => {
    assert.throws(() => planDeltas(names([delta(1, 10)]), 0, 13), {
      message: 'the delta archive is missing revisions 11..13 (no delta object reaches that far)',
    });
  });
});

test('planFetchBudget', async (t) => {
  const MiB = 1024 * 1024;
  await t.test('28 MiB holds 4 fetches of 7 MiB each: 4.5 MiB watch transport + 0.5 MiB encoder + 2 MiB events', () => {
    const plan = planFetchBudget({ budgetBytes: 28 * MiB, parallelism: 4 });
    assert.equal(plan.parallelism, 4);
    assert.equal(plan.windowBytes, 5 * MiB);
    assert.equal(plan.windowBytes + plan.segmentBytes, 7 * MiB);
    assert.ok(plan.segmentBytes >= 2 * MiB);
  });
  await t.test('a small budget lowers parallelism', () => {
    assert.equal(planFetchBudget({ budgetBytes: 16 * MiB, parallelism: 8 }).parallelism, 2);
  });
  await t.test('store buffers are part of each window', () => {
    const plan = planFetchBudget({ budgetBytes: 128 * MiB, parallelism: 4, storeBufferBytes: 10 * MiB });
    assert.equal(plan.parallelism, 4);
    assert.equal(plan.windowBytes, 15 * MiB);
    assert.equal(plan.segmentBytes, 17 * MiB);
  });
  await t.test('an encrypting stream is part of each window', () => {
    const plain = planFetchBudget({ budgetBytes: 128 * MiB, parallelism: 4 });
    const encrypted = planFetchBudget({ budgetBytes: 128 * MiB, parallelism: 4, encryptionBytes: ENCRYPT_STREAM_BYTES });
    assert.equal(encrypted.windowBytes, plain.windowBytes + ENCRYPT_STREAM_BYTES);
    assert.equal(encrypted.windowBytes + encrypted.segmentBytes, plain.windowBytes + plain.segmentBytes, 'the share stays the same');
    assert.equal(minimumDeltaBudgetBytes(4, 0, ENCRYPT_STREAM_BYTES), 28 * MiB + 4 * ENCRYPT_STREAM_BYTES);
    // 28 MiB holds 4 plain fetches exactly; encrypted, one fewer.
    assert.equal(planFetchBudget({ budgetBytes: 28 * MiB, parallelism: 4, encryptionBytes: ENCRYPT_STREAM_BYTES }).parallelism, 3);
  });
  await t.test('maxObjectBytes caps the segment so an encoded object fits', () => {
    const plan = planFetchBudget({ budgetBytes: 128 * MiB, parallelism: 4, maxObjectBytes: 8 * MiB });
    assert.equal(plan.segmentBytes, 6 * MiB);
    assert.throws(() => planFetchBudget({ budgetBytes: 128 * MiB, parallelism: 4, maxObjectBytes: MiB }), /maxObjectBytes/);
  });
  await t.test('too small for one fetch is an error naming the minimum', () => {
    assert.throws(() => planFetchBudget({ budgetBytes: 6 * MiB, parallelism: 1 }), /at least 7340032 bytes/);
    assert.equal(minimumDeltaBudgetBytes(4), 28 * MiB);
  });
});
