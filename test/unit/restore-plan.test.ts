import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyKeys, deltaKey, fullSnapshotKey, type DeltaName, type Encoding } from '../../src/archive/naming.js';
import { contiguousChainEnd, replayDirBytes, replayDirPlacement, restoreReach, snapshotCandidates, temporaryQuotaBytes, type RestoreTarget } from '../../src/restore/restore-plan.js';

const plain: Encoding = { compression: 'none', encrypted: false };
const T0 = Date.UTC(2024, 4, 1);
const HOUR = 3_600_000;
// Snapshots at revisions 100, 200, 300 taken at T0+1h, T0+2h, T0+3h.
const listing = classifyKeys([
  fullSnapshotKey(300, new Date(T0 + 3 * HOUR), plain),
  fullSnapshotKey(100, new Date(T0 + 1 * HOUR), plain),
  fullSnapshotKey(200, new Date(T0 + 2 * HOUR), plain),
  deltaKey(101, 200, plain),
]);

const candidateCases: Array<{ name: string; target: RestoreTarget; want: number[] }> = [
  { name: 'no target: every snapshot, newest first', target: {}, want: [300, 200, 100] },
  { name: 'toRevision between snapshots', target: { toRevision: 250 }, want: [200, 100] },
  { name: 'toRevision equal to a snapshot is inclusive', target: { toRevision: 200 }, want: [200, 100] },
  { name: 'toRevision past the newest', target: { toRevision: 10_000 }, want: [300, 200, 100] },
  { name: 'toRevision before the oldest', target: { toRevision: 99 }, want: [] },
  { name: 'toTime between snapshots', target: { toTime: new Date(T0 + 2.5 * HOUR) }, want: [200, 100] },
  { name: 'toTime equal to a snapshot time is inclusive', target: { toTime: new Date(T0 + 2 * HOUR) }, want: [200, 100] },
  { name: 'toTime before the oldest', target: { toTime: new Date(T0) }, want: [] },
  {
    name: 'both filters: the stricter one wins',
    target: { toRevision: 300, toTime: new Date(T0 + 1.5 * HOUR) },
    want: [100],
  },
];

for (const c of candidateCases) {
  test(`snapshotCandidates: ${c.name}`, () => {
    assert.deepEqual(
      snapshotCandidates(listing, c.target).map((f) => f.revision),
      c.want,
    );
  });
}

test('snapshotCandidates: an empty listing has no candidates', () => {
  assert.deepEqual(snapshotCandidates(classifyKeys([]), { toRevision: 5 }), []);
});

test('snapshotCandidates does not reorder the listing it was given', () => {
  const before = listing.fulls.map((f) => f.revision);
  snapshotCandidates(listing, {});
  assert.deepEqual(
    listing.fulls.map((f) => f.revision),
    before,
  );
});

const d = (fromRevision: number, toRevision: number): DeltaName => ({
  kind: 'delta',
  key: deltaKey(fromRevision, toRevision, plain),
  fromRevision,
  toRevision,
  compression: 'none',
  encrypted: false,
});

const chainCases: Array<{ name: string; deltas: DeltaName[]; after: number; want: number }> = [
  { name: 'no deltas', deltas: [], after: 100, want: 100 },
  { name: 'one adjacent delta', deltas: [d(101, 150)], after: 100, want: 150 },
  { name: 'contiguous chain', deltas: [d(101, 150), d(151, 200), d(201, 201)], after: 100, want: 201 },
  { name: 'unsorted input', deltas: [d(201, 250), d(101, 150), d(151, 200)], after: 100, want: 250 },
  { name: 'gap right after the start', deltas: [d(102, 150)], after: 100, want: 100 },
  { name: 'gap in the middle stops the chain', deltas: [d(101, 150), d(152, 200), d(201, 300)], after: 100, want: 150 },
  { name: 'overlapping deltas', deltas: [d(101, 180), d(150, 250), d(240, 300)], after: 100, want: 300 },
  { name: 'duplicates', deltas: [d(101, 150), d(101, 150), d(151, 200), d(151, 200)], after: 100, want: 200 },
  { name: 'a delta inside another adds nothing', deltas: [d(101, 300), d(150, 200)], after: 100, want: 300 },
  { name: 'a delta spanning the start', deltas: [d(50, 150), d(151, 160)], after: 100, want: 160 },
  { name: 'deltas that end before the start are ignored', deltas: [d(1, 50), d(51, 100), d(101, 110)], after: 100, want: 110 },
  { name: 'only deltas before the start', deltas: [d(1, 50), d(51, 99)], after: 100, want: 100 },
  { name: 'same start, the longer one wins', deltas: [d(101, 300), d(101, 120)], after: 100, want: 300 },
];

for (const c of chainCases) {
  test(`contiguousChainEnd: ${c.name}`, () => {
    const input = [...c.deltas];
    assert.equal(contiguousChainEnd(c.deltas, c.after), c.want);
    // Pure: the caller's array keeps its order.
    assert.deepEqual(c.deltas, input);
  });
}

test('temporaryQuotaBytes: room for the snapshot and the replayed deltas, between etcd default and maximum', () => {
  const GiB = 1024 ** 3;
  assert.equal(temporaryQuotaBytes({ snapshotDbBytes: 1024, deltaBytes: 1024, deltasCompressed: true }), 2 * GiB, 'never below the default');
  assert.equal(temporaryQuotaBytes({ snapshotDbBytes: 2.3 * GiB, deltaBytes: 0, deltasCompressed: false }), Math.ceil(2.3 * GiB * 1.5));
  assert.equal(temporaryQuotaBytes({ snapshotDbBytes: 2 * GiB, deltaBytes: 0.25 * GiB, deltasCompressed: true }), 6 * GiB, 'gzip counts 8x');
  assert.equal(temporaryQuotaBytes({ snapshotDbBytes: 7 * GiB, deltaBytes: GiB, deltasCompressed: false }), 8 * GiB, 'capped at etcd maximum');
  assert.equal(temporaryQuotaBytes({ snapshotDbBytes: GiB, deltaBytes: 0.5 * GiB, deltasCompressed: false }), Math.ceil(1.5 * GiB * 1.5));
});

/** Keys of `fulls` (revision at T0 + revision seconds) and `deltas` [from, to] stored at T0 + to seconds. */
function store(fulls: number[], deltas: Array<[number, number]>): { listing: ReturnType<typeof classifyKeys>; storedAt: Map<string, Date> } {
  const storedAt = new Map<string, Date>();
  for (const revision of fulls) storedAt.set(fullSnapshotKey(revision, new Date(T0 + revision * 1000), plain), new Date(T0 + revision * 1000));
  for (const [from, to] of deltas) storedAt.set(deltaKey(from, to, plain), new Date(T0 + to * 1000));
  return { listing: classifyKeys(storedAt.keys()), storedAt };
}

const reachCases: Array<{ name: string; fulls: number[]; deltas: Array<[number, number]>; want?: [first: number, last: number, replay: number] }> = [
  { name: 'no full snapshot: nothing is recoverable', fulls: [], deltas: [[1, 10]] },
  { name: 'one snapshot, no deltas: just its revision', fulls: [100], deltas: [], want: [100, 100, 0] },
  { name: 'one snapshot and its chain', fulls: [100], deltas: [[101, 150], [151, 180]], want: [100, 180, 80] },
  { name: 'a gap ends the chain: objects past it do not count', fulls: [100], deltas: [[101, 150], [161, 180]], want: [100, 150, 50] },
  { name: 'an older snapshot whose deltas reach the next joins the window', fulls: [100, 200], deltas: [[101, 199], [200, 230]], want: [100, 230, 30] },
  { name: 'an older snapshot whose deltas stop short does not', fulls: [100, 200], deltas: [[101, 150], [201, 230]], want: [200, 230, 30] },
  { name: 'deltas that start before the newest snapshot still continue it', fulls: [100, 200], deltas: [[101, 250]], want: [100, 250, 50] },
  { name: 'three snapshots, the oldest cut off by a gap', fulls: [50, 100, 200], deltas: [[51, 90], [101, 199], [201, 210]], want: [100, 210, 10] },
];

for (const c of reachCases) {
  test(`restoreReach: ${c.name}`, () => {
    const { listing: l, storedAt } = store(c.fulls, c.deltas);
    const reach = restoreReach(l, storedAt);
    if (!c.want) return assert.equal(reach, undefined);
    const [first, last, replay] = c.want;
    assert.deepEqual(reach, {
      window: { firstRevision: first, firstTime: new Date(T0 + first * 1000), lastRevision: last, lastTime: new Date(T0 + last * 1000) },
      replayRevisions: replay,
    });
  });
}

test('replayDirPlacement: tmpfs only when the expected data fits its free space and half the available memory', () => {
  const GiB = 1024 ** 3;
  assert.equal(replayDirPlacement({ expectedBytes: GiB, tmpfsFreeBytes: 4 * GiB, memAvailableBytes: 8 * GiB }), 'tmpfs');
  assert.equal(replayDirPlacement({ expectedBytes: 5 * GiB, tmpfsFreeBytes: 4 * GiB, memAvailableBytes: 64 * GiB }), 'disk', 'tmpfs too small');
  assert.equal(replayDirPlacement({ expectedBytes: 3 * GiB, tmpfsFreeBytes: 12 * GiB, memAvailableBytes: 5 * GiB }), 'disk', 'memory too short');
  assert.equal(replayDirPlacement({ expectedBytes: GiB, tmpfsFreeBytes: 0, memAvailableBytes: 8 * GiB }), 'disk', 'no tmpfs');
});

test('replayDirBytes: the db and the WAL each hold the replayed values, plus a quarter for free pages', () => {
  const MiB = 1024 ** 2;
  assert.equal(replayDirBytes({ snapshotDbBytes: 100 * MiB, deltaBytes: 10 * MiB, deltasCompressed: false }), Math.ceil(120 * MiB * 1.25));
  assert.equal(replayDirBytes({ snapshotDbBytes: 0, deltaBytes: MiB, deltasCompressed: true }), 20 * MiB, 'compressed deltas count 8x');
});
