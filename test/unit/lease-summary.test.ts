import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeOne } from '../../src/restore/foreign-revisions.js';
import { describeLeaseSummary, noLeaseChanges } from '../../src/restore/lease-restorer.js';

test('describeLeaseSummary: nothing to say when every key kept its lease', () => {
  assert.equal(describeLeaseSummary(noLeaseChanges()), '');
});

test('describeLeaseSummary names leases that were gone when archived and leases without TTLs, in hex', () => {
  const line = describeLeaseSummary({ granted: 3, revoked: 1, goneWhenArchived: ['255'], withoutTtl: ['16', '17'] });
  assert.match(line, /^3 lease\(s\) granted with the source's IDs and TTLs; 1 revoked after losing their keys; /);
  assert.match(line, /keys of 1 lease\(s\) already gone when archived were written without a lease \(hex IDs ff\)/);
  assert.match(line, /keys of 2 lease\(s\) from delta objects without recorded TTLs were written without a lease \(hex IDs 10, 11\)/);
});

test('describeOne: deleted keys on a lease and written keys, a few shown', () => {
  const text = describeOne(12, { puts: ['p'], deletes: ['a', 'b', 'c', 'd', 'e', 'f'], leases: new Set(['255']) });
  assert.match(text, /^revision 12 deleted 6 keys \("a", "b", "c", "d", "e", \.\.\.\) on lease ff \(hex\): a lease was revoked or expired/);
  assert.match(text, /and wrote 1 key \("p"\)$/);
  assert.equal(describeOne(3, { puts: [], deletes: ['x'], leases: new Set() }), 'revision 3 deleted 1 key ("x")');
});
