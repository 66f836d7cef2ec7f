import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidSpecError } from '../../src/errors.js';
import { MIN_S3_BUDGET_BYTES, planUpload, uploadWorkingSetBytes } from '../../src/store/s3-store.js';

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
];

for (const c of cases) {
  test(`planUpload: ${c.name}`, () => {
    if (c.expected === 'spec-error') {
      assert.throws(() => planUpload(c.budget, c.requested), InvalidSpecError);
    } else if (c.expected === 'range-error') {
      assert.throws(() => planUpload(c.budget, c.requested), RangeError);
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
