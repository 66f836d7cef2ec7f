import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidSpecError } from '../../src/errors.js';
import {
  formatBytes,
  MIN_PART_SIZE_BYTES,
  MIN_S3_BUDGET_BYTES,
  planUpload,
  READ_SLACK_BYTES,
  streamReservationBytes,
  uploadWorkingSetBytes,
} from '../../src/budget/s3-upload-plan.js';

const MiB = 1024 * 1024;

const cases: Array<{
  name: string;
  budget: number | undefined;
  requested?: { partSizeBytes?: number; queueSize?: number };
  expected: { partMiB: number; queue: number } | 'spec-error' | 'range-error';
}> = [
  { name: 'no budget: defaults', budget: undefined, expected: { partMiB: 8, queue: 4 } },
  { name: 'design default 128 MiB: 8 MiB x 4 in half the budget', budget: 128 * MiB, expected: { partMiB: 8, queue: 4 } },
  { name: '64 MiB: parts shrink before parallelism', budget: 64 * MiB, expected: { partMiB: 5, queue: 4 } },
  { name: '32 MiB: one part in flight', budget: 32 * MiB, expected: { partMiB: 5, queue: 1 } },
  { name: '16 MiB: more than half, the minimum', budget: 16 * MiB, expected: { partMiB: 5, queue: 1 } },
  { name: 'exactly the minimum', budget: MIN_S3_BUDGET_BYTES, expected: { partMiB: 5, queue: 1 } },
  { name: 'below the minimum', budget: MIN_S3_BUDGET_BYTES - 1, expected: 'spec-error' },
  { name: 'requested part size is an upper bound', budget: 1024 * MiB, requested: { partSizeBytes: 16 * MiB }, expected: { partMiB: 16, queue: 4 } },
  { name: 'requested queue size is an upper bound', budget: 1024 * MiB, requested: { queueSize: 2 }, expected: { partMiB: 8, queue: 2 } },
  { name: 'parts under 5 MiB are refused', budget: undefined, requested: { partSizeBytes: 4 * MiB }, expected: 'range-error' },
  { name: 'queue size 0 is refused', budget: undefined, requested: { queueSize: 0 }, expected: 'range-error' },
  { name: 'a part of exactly 5 MiB is allowed', budget: undefined, requested: { partSizeBytes: 5 * MiB }, expected: { partMiB: 5, queue: 4 } },
  { name: 'a queue of exactly one is allowed', budget: undefined, requested: { queueSize: 1 }, expected: { partMiB: 8, queue: 1 } },
  { name: 'a fractional part size is refused', budget: undefined, requested: { partSizeBytes: 5 * MiB + 0.5 }, expected: 'range-error' },
  { name: 'a fractional queue size is refused', budget: undefined, requested: { queueSize: 1.5 }, expected: 'range-error' },
  // Between the minimum and twice it, half the budget is too little: the put takes the minimum.
  { name: 'under twice the minimum: the minimum share', budget: MIN_S3_BUDGET_BYTES + 2 * MiB, expected: { partMiB: 5, queue: 1 } },
  // (q + 2) * part + slack = share exactly: the last byte of the share still fits.
  { name: 'a share that fits 6 MiB x 2 to the byte', budget: 2 * (4 * 6 * MiB + READ_SLACK_BYTES), expected: { partMiB: 6, queue: 2 } },
  { name: 'one byte less falls back to 5 MiB parts', budget: 2 * (4 * 6 * MiB + READ_SLACK_BYTES) - 2, expected: { partMiB: 5, queue: 2 } },
];

for (const c of cases) {
  test(`planUpload: ${c.name}`, () => {
    if (c.expected === 'spec-error') {
      assert.throws(() => planUpload(c.budget, c.requested), (err: unknown) => {
        assert.ok(err instanceof InvalidSpecError, String(err));
        assert.equal(
          err.message,
          `memory budget ${formatBytes(c.budget ?? 0)} is too small for S3 uploads: streaming needs at least 15.06 MiB ` +
            "(S3's minimum part of 5 MiB, one part in flight, and the copies lib-storage makes while assembling a part)",
        );
        return true;
      });
    } else if (c.expected === 'range-error') {
      assert.throws(() => planUpload(c.budget, c.requested), (err: unknown) => {
        assert.ok(err instanceof RangeError, String(err));
        const { partSizeBytes, queueSize } = c.requested ?? {};
        const message =
          queueSize === undefined
            ? `S3 part size must be at least 5 MiB, got ${partSizeBytes}`
            : `S3 queue size must be >= 1, got ${queueSize}`;
        assert.equal(err.message, message);
        return true;
      });
    } else {
      const plan = planUpload(c.budget, c.requested);
      assert.equal(plan.partSizeBytes, c.expected.partMiB * MiB);
      assert.equal(plan.queueSize, c.expected.queue);
      assert.equal(plan.workingSetBytes, uploadWorkingSetBytes(plan.partSizeBytes, plan.queueSize));
    }
  });
}

test('planUpload: the working set never exceeds the budget', () => {
  for (let budget = MIN_S3_BUDGET_BYTES; budget <= 2048 * MiB; budget += 3 * MiB + 12345) {
    const plan = planUpload(budget);
    assert.ok(plan.workingSetBytes <= budget, `budget ${budget}: working set ${plan.workingSetBytes}`);
    assert.ok(plan.partSizeBytes >= 5 * MiB);
  }
});

test('planUpload: a put takes at most half the budget (or the minimum), with the largest whole-MiB parts that fit', () => {
  for (let budget = MIN_S3_BUDGET_BYTES; budget <= 512 * MiB; budget += 3 * MiB + 12345) {
    const share = Math.max(MIN_S3_BUDGET_BYTES, Math.floor(budget / 2));
    const plan = planUpload(budget);
    const context = `budget ${budget}: ${plan.partSizeBytes} x ${plan.queueSize}`;
    assert.ok(plan.workingSetBytes <= share, context);
    assert.equal(plan.partSizeBytes % MiB, 0, context);
    // Parts are as large as fit (up to the default 8 MiB) for the chosen parallelism...
    const larger = plan.partSizeBytes + MiB;
    assert.ok(plan.partSizeBytes === 8 * MiB || uploadWorkingSetBytes(larger, plan.queueSize) > share, context);
    // ...and parallelism drops only when even 5 MiB parts do not fit one more in flight.
    assert.ok(plan.queueSize === 4 || uploadWorkingSetBytes(MIN_PART_SIZE_BYTES, plan.queueSize + 1) > share, context);
  }
});

test('streamReservationBytes: three part buffers plus the read slack', () => {
  assert.equal(READ_SLACK_BYTES, 64 * 1024);
  assert.equal(streamReservationBytes(5 * MiB), 15 * MiB + 64 * 1024);
  assert.equal(streamReservationBytes(8 * MiB), 24 * MiB + 64 * 1024);
});

test('the minimum S3 budget is one 5 MiB part in flight, two copies and the slack', () => {
  assert.equal(MIN_S3_BUDGET_BYTES, 15 * MiB + 64 * 1024);
});

const formats: Array<[number, string]> = [
  [0, '0 bytes'],
  [MiB - 1, '1048575 bytes'],
  [MiB, '1 MiB'],
  [5 * MiB + MiB / 4, '5.25 MiB'],
  [5 * MiB + 1, '5.00 MiB'],
  [15 * MiB + 64 * 1024, '15.06 MiB'],
];
for (const [bytes, want] of formats) {
  test(`formatBytes(${bytes}) = ${want}`, () => assert.equal(formatBytes(bytes), want));
}
