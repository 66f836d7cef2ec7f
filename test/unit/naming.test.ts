import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyKeys,
  deltaKey,
  fullSnapshotKey,
  parseBackupKey,
  type BackupName,
  type Encoding,
} from '../../src/archive/naming.js';

const plain: Encoding = { compression: 'none', encrypted: false };
const gzip: Encoding = { compression: 'gzip', encrypted: false };
const enc: Encoding = { compression: 'none', encrypted: true };
const gzipEnc: Encoding = { compression: 'gzip', encrypted: true };
// 2024-01-01T12:00:00Z
const NOON = Date.UTC(2024, 0, 1, 12);

const fullCases: Array<{ name: string; revision: number; timeMs: number; encoding: Encoding; key: string }> = [
  { name: 'revision 0 at the epoch', revision: 0, timeMs: 0, encoding: plain, key: 'full/00000000000000000000-0.db' },
  { name: 'plain', revision: 12345, timeMs: NOON, encoding: plain, key: 'full/00000000000000012345-1704110400.db' },
  { name: 'gzip', revision: 12345, timeMs: NOON, encoding: gzip, key: 'full/00000000000000012345-1704110400.db.gz' },
  { name: 'encrypted', revision: 12345, timeMs: NOON, encoding: enc, key: 'full/00000000000000012345-1704110400.db.enc' },
  {
    name: 'gzip then encrypted',
    revision: 12345,
    timeMs: NOON,
    encoding: gzipEnc,
    key: 'full/00000000000000012345-1704110400.db.gz.enc',
  },
  {
    name: 'largest safe revision',
    revision: Number.MAX_SAFE_INTEGER,
    timeMs: NOON,
    encoding: plain,
    key: 'full/00009007199254740991-1704110400.db',
  },
];

for (const c of fullCases) {
  test(`full snapshot key round trip: ${c.name}`, () => {
    const key = fullSnapshotKey(c.revision, new Date(c.timeMs), c.encoding);
    assert.equal(key, c.key);
    const want: BackupName = { kind: 'full', key, revision: c.revision, time: new Date(c.timeMs), ...c.encoding };
    assert.deepEqual(parseBackupKey(key), want);
  });
}

test('full snapshot key keeps whole seconds: milliseconds are dropped, not rounded', () => {
  const key = fullSnapshotKey(7, new Date(NOON + 999), plain);
  assert.equal(key, 'full/00000000000000000007-1704110400.db');
  const parsed = parseBackupKey(key);
  assert.equal(parsed?.kind, 'full');
  assert.deepEqual(parsed?.kind === 'full' ? parsed.time : undefined, new Date(NOON));
});

const deltaCases: Array<{ name: string; from: number; to: number; encoding: Encoding; key: string }> = [
  {
    name: 'plain',
    from: 1,
    to: 1000,
    encoding: plain,
    key: 'delta/00000000000000000001-00000000000000001000.jsonl',
  },
  {
    name: 'single revision',
    from: 42,
    to: 42,
    encoding: plain,
    key: 'delta/00000000000000000042-00000000000000000042.jsonl',
  },
  { name: 'gzip', from: 5, to: 9, encoding: gzip, key: 'delta/00000000000000000005-00000000000000000009.jsonl.gz' },
  { name: 'encrypted', from: 5, to: 9, encoding: enc, key: 'delta/00000000000000000005-00000000000000000009.jsonl.enc' },
  {
    name: 'gzip then encrypted',
    from: 5,
    to: 9,
    encoding: gzipEnc,
    key: 'delta/00000000000000000005-00000000000000000009.jsonl.gz.enc',
  },
];

for (const c of deltaCases) {
  test(`delta key round trip: ${c.name}`, () => {
    const key = deltaKey(c.from, c.to, c.encoding);
    assert.equal(key, c.key);
    const want: BackupName = { kind: 'delta', key, fromRevision: c.from, toRevision: c.to, ...c.encoding };
    assert.deepEqual(parseBackupKey(key), want);
  });
}

test('zero padding makes lexical order numeric order', () => {
  const revisions = [9, 10, 99, 100, 5, 1_000_000_000_000, 0, 123_456_789, Number.MAX_SAFE_INTEGER];
  const fullKeys = revisions.map((rev) => fullSnapshotKey(rev, new Date(NOON), plain)).sort();
  const parsedFull = fullKeys.map((key) => {
    const name = parseBackupKey(key);
    return name?.kind === 'full' ? name.revision : undefined;
  });
  const numeric = [...revisions].sort((a, b) => a - b);
  assert.deepEqual(parsedFull, numeric);

  const deltaKeys = revisions.map((rev) => deltaKey(rev, rev, gzip)).sort();
  const parsedDelta = deltaKeys.map((key) => {
    const name = parseBackupKey(key);
    return name?.kind === 'delta' ? name.fromRevision : undefined;
  });
  assert.deepEqual(parsedDelta, numeric);
});

const junkKeys: Array<{ name: string; key: string }> = [
  { name: 'empty', key: '' },
  { name: 'unrelated file', key: 'README.md' },
  { name: 'directory only', key: 'full/' },
  { name: 'unpadded revision', key: 'full/1-1704110400.db' },
  { name: '21-digit revision', key: 'full/000000000000000000001-1704110400.db' },
  { name: 'missing time', key: 'full/00000000000000000001.db' },
  { name: 'time over 12 digits', key: 'full/00000000000000000001-1704110400000.db' },
  { name: 'negative time', key: 'full/00000000000000000001--1.db' },
  { name: 'wrong extension', key: 'full/00000000000000000001-1704110400.tar' },
  { name: 'suffixes in the wrong order', key: 'full/00000000000000000001-1704110400.db.enc.gz' },
  { name: 'in-progress upload', key: 'full/00000000000000000001-1704110400.db.part' },
  { name: 'nested under a prefix', key: 'cluster/full/00000000000000000001-1704110400.db' },
  { name: 'upper-case directory', key: 'FULL/00000000000000000001-1704110400.db' },
  { name: 'delta with a full extension', key: 'delta/00000000000000000001-00000000000000000002.db' },
  { name: 'delta ending before it starts', key: 'delta/00000000000000000009-00000000000000000005.jsonl' },
  { name: 'delta unpadded', key: 'delta/1-2.jsonl' },
  { name: 'delta missing end', key: 'delta/00000000000000000001.jsonl' },
  { name: 'full in the delta directory', key: 'delta/00000000000000000001-1704110400.db' },
  // 20 nines is past int64 and far past Number.MAX_SAFE_INTEGER: precision would be lost.
  { name: 'full revision not a safe integer', key: 'full/99999999999999999999-1704110400.db' },
  { name: 'delta end not a safe integer', key: 'delta/00000000000000000001-99999999999999999999.jsonl' },
];

for (const c of junkKeys) {
  test(`parseBackupKey rejects junk: ${c.name}`, () => {
    assert.equal(parseBackupKey(c.key), undefined);
  });
}

test('classifyKeys sorts fulls by revision then time, deltas by from then to, and keeps junk apart in order', () => {
  const keys = [
    'delta/00000000000000000300-00000000000000000400.jsonl',
    'full/00000000000000000200-1704110500.db.gz',
    'notes.txt',
    'delta/00000000000000000101-00000000000000000300.jsonl.gz',
    'full/00000000000000000100-1704110400.db',
    'delta/00000000000000000101-00000000000000000200.jsonl',
    'full/00000000000000000200-1704110450.db',
    'full/00000000000000000100-1704110400.db.part',
  ];
  const listing = classifyKeys(keys);
  assert.deepEqual(
    listing.fulls.map((f) => f.key),
    [
      'full/00000000000000000100-1704110400.db',
      'full/00000000000000000200-1704110450.db',
      'full/00000000000000000200-1704110500.db.gz',
    ],
  );
  assert.deepEqual(
    listing.deltas.map((d) => d.key),
    [
      'delta/00000000000000000101-00000000000000000200.jsonl',
      'delta/00000000000000000101-00000000000000000300.jsonl.gz',
      'delta/00000000000000000300-00000000000000000400.jsonl',
    ],
  );
  assert.deepEqual(listing.unknown, ['notes.txt', 'full/00000000000000000100-1704110400.db.part']);
});

test('classifyKeys of an empty listing', () => {
  assert.deepEqual(classifyKeys([]), { fulls: [], deltas: [], unknown: [] });
});

test('classifyKeys accepts any iterable', () => {
  const listing = classifyKeys(new Set(['full/00000000000000000001-1.db', 'x']));
  assert.deepEqual(
    listing.fulls.map((f) => f.revision),
    [1],
  );
  assert.deepEqual(listing.unknown, ['x']);
});

const rangeErrors: Array<{ name: string; make: () => string; todo?: string }> = [
  { name: 'full: negative revision', make: () => fullSnapshotKey(-1, new Date(NOON), plain) },
  { name: 'full: fractional revision', make: () => fullSnapshotKey(1.5, new Date(NOON), plain) },
  { name: 'full: NaN revision', make: () => fullSnapshotKey(Number.NaN, new Date(NOON), plain) },
  { name: 'full: unsafe revision', make: () => fullSnapshotKey(Number.MAX_SAFE_INTEGER + 1, new Date(NOON), plain) },
  {
    name: 'full: invalid date',
    make: () => fullSnapshotKey(1, new Date(Number.NaN), plain),
  },
  {
    name: 'full: time before the epoch',
    make: () => fullSnapshotKey(1, new Date(-1000), plain),
  },
  { name: 'delta: end before start', make: () => deltaKey(10, 9, plain) },
  { name: 'delta: negative start', make: () => deltaKey(-1, 5, plain) },
  { name: 'delta: fractional end', make: () => deltaKey(1, 2.5, plain) },
  { name: 'delta: infinite end', make: () => deltaKey(1, Number.POSITIVE_INFINITY, plain) },
];

for (const c of rangeErrors) {
  test(`invalid input throws RangeError: ${c.name}`, { todo: c.todo }, () => {
    assert.throws(c.make, RangeError);
  });
}
