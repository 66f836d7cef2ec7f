import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyKeys, deltaKey, fullSnapshotKey, type Encoding } from '../../src/archive/naming.js';
import { contiguousChainEnd } from '../../src/restore/restore-plan.js';
import { planRetention, type RetentionPlan, type RetentionPolicy } from '../../src/store/retention.js';

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
    assert.equal(plan.held, undefined);
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


// ---------------------------------------------------------------------------------------------
// Exponential, on generated snapshot sets over six weeks at various intervals.
// NOW is Thursday 2024-03-14 12:30 UTC, so its buckets are:
//   hourly: the clock hours 2024-03-13T13 .. 2024-03-14T12 (24)
//   daily:  the UTC days 2024-03-08 .. 2024-03-14 (7)
//   weekly: the ISO weeks starting Monday 2024-02-19, 02-26, 03-04 and 03-11 (4)
// ---------------------------------------------------------------------------------------------

const NOW = '2024-03-14T12:30';
const exponential = (maxFullSnapshots = 7): RetentionPolicy => ({ policy: 'Exponential', maxFullSnapshots });

/** '2024-03-14T12:30' or '2024-03-14T12:30:15', UTC, to a Date. */
function at(text: string): Date {
  const date = new Date(`${text.length === 16 ? `${text}:00` : text}Z`);
  assert.ok(Number.isFinite(date.getTime()), `bad test time ${text}`);
  return date;
}

/** How the assertions print times: 2024-03-14T12:30:00 */
const show = (date: Date): string => date.toISOString().slice(0, 19);

/** Times from `first` to `last` inclusive, every `stepMinutes`. */
function series(first: string, last: string, stepMinutes: number): string[] {
  const times: string[] = [];
  for (let ms = at(first).getTime(); ms <= at(last).getTime(); ms += stepMinutes * 60_000) times.push(show(new Date(ms)));
  return times;
}

/** `times` without those in [from, to]. */
const without = (times: string[], from: string, to: string): string[] =>
  times.filter((t) => at(t).getTime() < at(from).getTime() || at(t).getTime() > at(to).getTime());

const fullAt = (revision: number, time: string): string => fullSnapshotKey(revision, at(time), plain);

/**
 * Full snapshots at `times` (revisions 1000, 2000, ... in time order) and a contiguous delta chain
 * from revision 1 to 500 past the last snapshot, in two objects between each pair of snapshots.
 */
function archive(times: string[]): { keys: string[]; end: number } {
  const sorted = [...times].sort((a, b) => at(a).getTime() - at(b).getTime());
  const keys = sorted.map((t, i) => fullAt((i + 1) * 1000, t));
  keys.push(delta(1, 999));
  for (let i = 1; i <= sorted.length; i++) {
    keys.push(delta(i * 1000 + 1, i * 1000 + 500));
    if (i < sorted.length) keys.push(delta(i * 1000 + 501, (i + 1) * 1000));
  }
  return { keys, end: sorted.length * 1000 + 500 };
}

/** Every kept full snapshot can be rolled forward through the kept deltas to `end`. */
function assertRestorableToEnd(keys: string[], plan: RetentionPlan, end: number): void {
  const deleted = new Set(plan.deleteKeys);
  const keptDeltas = classifyKeys(keys.filter((key) => !deleted.has(key))).deltas;
  for (const full of plan.keep) {
    assert.equal(contiguousChainEnd(keptDeltas, full.revision), end, `${full.key} no longer reaches revision ${end}`);
  }
}

const hourlyBuckets = series('2024-03-13T13:00', '2024-03-14T12:00', 60);

const generated: Array<{ name: string; now?: string; times: string[]; keep: string[] }> = [
  {
    name: 'hourly at :00 for six weeks',
    times: series('2024-02-01T00:00', '2024-03-14T12:00', 60),
    keep: ['2024-02-25T23:00', '2024-03-03T23:00', ...series('2024-03-08T23:00', '2024-03-12T23:00', 1440), ...hourlyBuckets],
  },
  {
    name: 'every 15 minutes, the last one exactly at now',
    times: series('2024-02-01T00:00', '2024-03-14T12:30', 15),
    keep: [
      '2024-02-25T23:45',
      '2024-03-03T23:45',
      ...series('2024-03-08T23:45', '2024-03-12T23:45', 1440),
      ...series('2024-03-13T13:45', '2024-03-14T11:45', 60),
      '2024-03-14T12:30',
    ],
  },
  {
    name: 'daily at 02:00',
    times: series('2024-02-01T02:00', '2024-03-14T02:00', 1440),
    keep: ['2024-02-25T02:00', '2024-03-03T02:00', ...series('2024-03-08T02:00', '2024-03-14T02:00', 1440)],
  },
  {
    name: 'every 6 hours',
    times: series('2024-02-01T00:00', '2024-03-14T12:00', 360),
    keep: [
      '2024-02-25T18:00',
      '2024-03-03T18:00',
      ...series('2024-03-08T18:00', '2024-03-13T18:00', 1440),
      '2024-03-14T00:00',
      '2024-03-14T06:00',
      '2024-03-14T12:00',
    ],
  },
  {
    name: 'weekly on Sunday 00:00: the weeks before 2024-02-19 go',
    times: series('2024-02-04T00:00', '2024-03-10T00:00', 7 * 1440),
    keep: ['2024-02-25T00:00', '2024-03-03T00:00', '2024-03-10T00:00'],
  },
  {
    name: 'every 90 minutes: clock hours without a snapshot keep nothing',
    times: series('2024-02-01T00:00', '2024-03-14T12:30', 90),
    keep: [
      '2024-02-25T22:30',
      '2024-03-03T22:30',
      ...series('2024-03-08T22:30', '2024-03-12T22:30', 1440),
      // 16 snapshots in the 24 hourly buckets
      ...series('2024-03-13T13:30', '2024-03-14T12:00', 90),
    ],
  },
  {
    name: 'hourly with the operator down for four days: an empty day keeps nothing, no older one stands in',
    times: without(series('2024-02-01T00:00', '2024-03-14T12:00', 60), '2024-03-05T10:00', '2024-03-09T14:00'),
    keep: ['2024-02-25T23:00', '2024-03-03T23:00', ...series('2024-03-09T23:00', '2024-03-12T23:00', 1440), ...hourlyBuckets],
  },
  {
    name: 'everything older than the fourth week: only the newest is kept',
    times: series('2024-01-01T00:00', '2024-02-18T23:00', 60),
    keep: ['2024-02-18T23:00'],
  },
  {
    name: 'now exactly at Monday 00:00: a new hour, day and week start with the snapshot taken then',
    now: '2024-03-11T00:00',
    times: series('2024-02-01T00:00', '2024-03-11T00:00', 60),
    keep: [
      '2024-02-25T23:00',
      '2024-03-03T23:00',
      ...series('2024-03-05T23:00', '2024-03-09T23:00', 1440),
      ...series('2024-03-10T01:00', '2024-03-11T00:00', 60),
    ],
  },
  {
    name: 'bucket edges to the second',
    times: [
      '2024-02-18T23:59:59', // Sunday of the week before the fourth: gone
      '2024-02-19T00:00:00', // Monday of the fourth week: its only snapshot
      '2024-03-07T23:59:59', // the day before the seventh; its week's newest is 03-10
      '2024-03-08T00:00:00', // the seventh day's only snapshot
      '2024-03-10T00:00:00',
      '2024-03-13T12:59:59', // the 25th clock hour; its day's newest is 20:00
      '2024-03-13T13:00:00', // the 24th clock hour
      '2024-03-13T20:00:00',
      '2024-03-14T10:59:59',
      '2024-03-14T11:00:00', // same hour as the next one, which is newer
      '2024-03-14T11:00:01',
    ],
    keep: [
      '2024-02-19T00:00:00',
      '2024-03-08T00:00:00',
      '2024-03-10T00:00:00',
      '2024-03-13T13:00:00',
      '2024-03-13T20:00:00',
      '2024-03-14T10:59:59',
      '2024-03-14T11:00:01',
    ],
  },
  {
    name: 'a snapshot dated after now (clock skew) is kept',
    times: ['2024-02-01T00:00', ...series('2024-03-14T09:00', '2024-03-14T12:00', 60), '2024-03-14T13:15'],
    keep: [...series('2024-03-14T09:00', '2024-03-14T12:00', 60), '2024-03-14T13:15'],
  },
  {
    name: 'a single snapshot a year old is kept',
    times: ['2023-03-14T12:30'],
    keep: ['2023-03-14T12:30'],
  },
];

for (const c of generated) {
  test(`planRetention Exponential: ${c.name}`, () => {
    const now = at(c.now ?? NOW);
    const { keys, end } = archive(c.times);
    const listing = classifyKeys(keys);
    const plan = planRetention(listing, exponential(), now);

    assert.deepEqual(
      plan.keep.map((f) => show(f.time)),
      c.keep.map((t) => show(at(t))),
    );
    assert.equal(plan.held, undefined);
    // Every full snapshot is either kept or deleted; deltas go exactly when they end at or before the
    // oldest kept snapshot, which holds their revisions.
    const kept = new Set(plan.keep.map((f) => f.key));
    const oldestKept = plan.keep[0]!.revision;
    assert.deepEqual(
      [...plan.deleteKeys].sort(),
      [
        ...listing.fulls.filter((f) => !kept.has(f.key)).map((f) => f.key),
        ...listing.deltas.filter((d) => d.toRevision <= oldestKept).map((d) => d.key),
      ].sort(),
    );
    assert.ok(kept.has(listing.fulls.at(-1)!.key), 'the newest full snapshot is deleted');
    assertRestorableToEnd(keys, plan, end);

    // maxFullSnapshots does not apply to Exponential.
    for (const maxFullSnapshots of [1, 10_000]) {
      const other = planRetention(listing, exponential(maxFullSnapshots), now);
      assert.deepEqual(other, plan, `maxFullSnapshots ${maxFullSnapshots} changed the plan`);
    }
    // A second pass at the same time deletes nothing more.
    const deleted = new Set(plan.deleteKeys);
    const again = planRetention(classifyKeys(keys.filter((key) => !deleted.has(key))), exponential(), now);
    assert.deepEqual(again.deleteKeys, [], 'retention is not idempotent');
    assert.deepEqual(again.keep, plan.keep);
  });
}

// Hourly snapshots for six weeks pass every weekly bucket's expiry; 15-minute ones (several per hourly
// bucket) for the last ten days, from a Monday, pass the daily buckets' expiry and a week boundary. Six
// weeks of 15-minute snapshots added nothing but 70 s (retention over thousands of objects, 4000 times).
const incremental: Array<{ stepMinutes: number; first: string; span: string }> = [
  { stepMinutes: 60, first: '2024-02-01T00:00', span: 'six weeks' },
  { stepMinutes: 15, first: '2024-03-04T00:00', span: 'ten days' },
];
for (const { stepMinutes, first, span } of incremental) {
  const name = `applied after every ${stepMinutes}-minute snapshot for ${span}, it ends where one pass does`;
  test(`planRetention Exponential: ${name}`, () => {
    const times = series(first, NOW, stepMinutes);
    let keys: string[] = [];
    let revision = 0;
    for (const time of times) {
      // A delta chain up to the snapshot, then the snapshot at its last revision.
      keys.push(delta(revision + 1, revision + 1000));
      revision += 1000;
      keys.push(fullAt(revision, time));
      const plan = planRetention(classifyKeys(keys), exponential(), new Date(at(time).getTime() + 30_000));
      assert.equal(plan.keep.at(-1)?.revision, revision, `the newest snapshot (${time}) is not kept`);
      assertRestorableToEnd(keys, plan, revision);
      const deleted = new Set(plan.deleteKeys);
      keys = keys.filter((key) => !deleted.has(key));
    }
    const last = new Date(at(NOW).getTime() + 30_000);
    const onePass = planRetention(classifyKeys(archive(times).keys), exponential(), last);
    assert.deepEqual(
      classifyKeys(keys).fulls.map((f) => show(f.time)),
      onePass.keep.map((f) => show(f.time)),
    );
    // Deltas after the oldest kept snapshot all stay (about four weeks of them); the rest went.
    const left = classifyKeys(keys);
    assert.ok(left.fulls.length <= 24 + 7 + 4, `${left.fulls.length} full snapshots left after six weeks`);
    assert.ok(
      left.deltas.every((d) => d.toRevision > left.fulls[0]!.revision),
      'a delta before the oldest kept snapshot is left',
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Deltas, chain starts, holds and the newest snapshot, for both policies.
// ---------------------------------------------------------------------------------------------

const safetyCases: Array<{
  name: string;
  keys: string[];
  policy: RetentionPolicy;
  keep: number[];
  deleteKeys: string[];
  held?: RegExp;
  /** Every kept snapshot must still reach this revision through kept deltas. */
  restorableTo?: number;
  /** Kept snapshot revision -> the revision it must still reach through kept deltas. */
  reaches?: Record<number, number>;
}> = [
  {
    name: 'Exponential: deltas ending at or before the oldest kept snapshot go; one spanning it stays',
    keys: [
      fullAt(1000, '2024-02-10T00:00'),
      fullAt(2000, '2024-03-14T10:00'),
      fullAt(3000, '2024-03-14T11:00'),
      delta(1, 999),
      delta(1001, 1500),
      delta(1501, 2000),
      delta(1900, 2100),
      delta(2001, 3000),
      delta(3001, 3100),
    ],
    policy: exponential(),
    keep: [2000, 3000],
    deleteKeys: [fullAt(1000, '2024-02-10T00:00'), delta(1, 999), delta(1001, 1500), delta(1501, 2000)],
    restorableTo: 3100,
  },
  {
    name: 'Exponential: the snapshot that restarted the chain after lost revisions is kept though not newest in its hour',
    keys: [
      fullAt(500, '2024-02-01T00:00'),
      fullAt(1000, '2024-03-14T10:10'),
      fullAt(2000, '2024-03-14T11:05'), // taken after etcd compacted 1501..1999 before they were archived
      fullAt(2500, '2024-03-14T11:50'),
      fullAt(2600, '2024-03-14T12:00'),
      delta(501, 1000),
      delta(1001, 1500),
      delta(2001, 2500),
      delta(2501, 2600),
    ],
    policy: exponential(),
    keep: [1000, 2000, 2500, 2600],
    deleteKeys: [fullAt(500, '2024-02-01T00:00'), delta(501, 1000)],
    // Without 2000, revisions 2001..2499 would be archived but unreachable.
    reaches: { 1000: 1500, 2000: 2600 },
  },
  {
    name: 'Exponential: without the gap the same snapshot goes (the chain reaches it from the older one)',
    keys: [
      fullAt(500, '2024-02-01T00:00'),
      fullAt(1000, '2024-03-14T10:10'),
      fullAt(2000, '2024-03-14T11:05'),
      fullAt(2500, '2024-03-14T11:50'),
      fullAt(2600, '2024-03-14T12:00'),
      delta(501, 1000),
      delta(1001, 1500),
      delta(1501, 2000),
      delta(2001, 2500),
      delta(2501, 2600),
    ],
    policy: exponential(),
    keep: [1000, 2500, 2600],
    deleteKeys: [fullAt(500, '2024-02-01T00:00'), fullAt(2000, '2024-03-14T11:05'), delta(501, 1000)],
    restorableTo: 2600,
  },
  {
    name: 'Exponential: deltas past a missing object (no snapshot to replay them from) are kept and do not hold retention',
    keys: [
      fullAt(500, '2024-01-15T00:00'),
      fullAt(1000, '2024-03-10T12:00'),
      fullAt(2000, '2024-03-14T12:00'),
      delta(501, 1000),
      delta(1001, 1200),
      delta(1301, 1500),
      delta(2001, 2100),
    ],
    policy: exponential(),
    keep: [1000, 2000],
    deleteKeys: [fullAt(500, '2024-01-15T00:00'), delta(501, 1000)],
  },
  {
    name: 'LimitBased: a gap after the oldest kept snapshot changes nothing (the newest N are consecutive)',
    keys: [full(1000), full(2000), full(3000), delta(1001, 1500), delta(2001, 3000), delta(3001, 3100)],
    policy: limit(2),
    keep: [2000, 3000],
    deleteKeys: [full(1000), delta(1001, 1500)],
    restorableTo: 3100,
  },
  {
    name: 'LimitBased: a snapshot with a higher revision but an earlier time holds everything',
    keys: [
      fullAt(1000, '2024-01-01T00:00'),
      fullAt(5000, '2024-03-10T00:00'), // the old cluster
      fullAt(3000, '2024-03-14T00:00'), // restored from an older backup: revisions restart lower
      delta(3001, 3100),
      delta(4001, 5000),
    ],
    policy: limit(1),
    keep: [1000, 3000, 5000],
    deleteKeys: [],
    held: /^full snapshot full\/0+5000-\d+\.db has a higher revision but an earlier time than full\/0+3000-\d+\.db: /,
  },
  {
    name: 'Exponential: a snapshot with a higher revision but an earlier time holds everything',
    keys: [fullAt(1000, '2024-01-01T00:00'), fullAt(5000, '2024-03-10T00:00'), fullAt(3000, '2024-03-14T00:00')],
    policy: exponential(),
    keep: [1000, 3000, 5000],
    deleteKeys: [],
    held: /two etcd histories or the clock went back/,
  },
  {
    name: 'Exponential: no full snapshot, nothing is deleted',
    keys: [delta(1, 100), delta(101, 200)],
    policy: exponential(),
    keep: [],
    deleteKeys: [],
  },
  {
    name: 'keys that do not parse are never deleted',
    keys: ['full/latest.db', 'delta/1-2.jsonl', 'README', fullAt(1000, '2024-01-01T00:00'), fullAt(2000, '2024-03-14T12:00')],
    policy: exponential(),
    keep: [2000],
    deleteKeys: [fullAt(1000, '2024-01-01T00:00')],
  },
];

for (const c of safetyCases) {
  test(`planRetention: ${c.name}`, () => {
    const listing = classifyKeys(c.keys);
    const plan = planRetention(listing, c.policy, at(NOW));
    assert.deepEqual(
      plan.keep.map((f) => f.revision),
      c.keep,
    );
    assert.deepEqual(plan.deleteKeys, c.deleteKeys);
    if (c.held) assert.match(plan.held ?? '', c.held);
    else assert.equal(plan.held, undefined);
    if (c.restorableTo !== undefined) assertRestorableToEnd(c.keys, plan, c.restorableTo);
    const deleted = new Set(plan.deleteKeys);
    const keptDeltas = listing.deltas.filter((d) => !deleted.has(d.key));
    for (const [from, to] of Object.entries(c.reaches ?? {})) {
      assert.ok(plan.keep.some((f) => f.revision === Number(from)), `snapshot ${from} is not kept`);
      assert.equal(contiguousChainEnd(keptDeltas, Number(from)), to, `snapshot ${from} does not reach ${to}`);
    }
    assert.ok(plan.deleteKeys.every((key) => !listing.unknown.includes(key)), 'an unparseable key is deleted');
  });
}

const newestCases: Array<{ name: string; times: string[]; policy: RetentionPolicy }> = [
  { name: 'Exponential, the only snapshot, years old', times: ['2020-01-01T00:00'], policy: exponential() },
  {
    name: 'Exponential, all older than four weeks',
    times: series('2024-01-01T00:00', '2024-01-31T00:00', 1440),
    policy: exponential(),
  },
  { name: 'Exponential, all dated after now', times: ['2024-03-15T00:00', '2024-03-16T00:00'], policy: exponential() },
  {
    name: 'Exponential, maxFullSnapshots 1',
    times: series('2024-03-01T00:00', '2024-03-14T00:00', 1440),
    policy: exponential(1),
  },
  { name: 'LimitBased 1', times: series('2024-02-01T00:00', '2024-03-14T12:00', 60), policy: limit(1) },
  { name: 'LimitBased 0', times: ['2024-03-01T00:00', '2024-03-02T00:00'], policy: limit(0) },
];

for (const c of newestCases) {
  test(`planRetention: the newest snapshot is always kept (${c.name})`, () => {
    const { keys, end } = archive(c.times);
    const listing = classifyKeys(keys);
    const plan = planRetention(listing, c.policy, at(NOW));
    const newest = listing.fulls.at(-1)!;
    assert.ok(
      plan.keep.some((f) => f.key === newest.key),
      `${newest.key} is not kept`,
    );
    assert.ok(!plan.deleteKeys.includes(newest.key), `${newest.key} is deleted`);
    assertRestorableToEnd(keys, plan, end);
  });
}

test('planRetention: Exponential refuses an invalid now rather than deleting everything but the newest', () => {
  const listing = classifyKeys(archive(['2024-03-13T00:00', '2024-03-14T00:00']).keys);
  assert.throws(() => planRetention(listing, exponential(), new Date(Number.NaN)), RangeError);
});

test('planRetention: now defaults to the current time', () => {
  const hour = 3_600_000;
  const nowMs = Date.now();
  const keys = [
    fullSnapshotKey(1000, new Date(nowMs - 400 * 24 * hour), plain),
    fullSnapshotKey(2000, new Date(nowMs - 2 * hour), plain),
    fullSnapshotKey(3000, new Date(nowMs - hour), plain),
  ];
  const plan = planRetention(classifyKeys(keys), exponential());
  assert.deepEqual(
    plan.keep.map((f) => f.revision),
    [2000, 3000],
  );
  assert.deepEqual(plan.deleteKeys, [keys[0]]);
});
