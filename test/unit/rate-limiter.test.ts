import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  type Clock,
} from '../../src/controller/rate-limiter.js';

function fakeClock(start = 0): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => (now += ms) };
}

test('per-item exponential backoff', () => {
  const cases: Array<{ name: string; base: number; max: number; failures: number; expected: number[] }> = [
    // client-go's default: 5ms, 10ms, 20ms...
    { name: 'doubles from the base', base: 5, max: 1_000_000, failures: 5, expected: [5, 10, 20, 40, 80] },
    { name: 'caps at the max', base: 100, max: 500, failures: 5, expected: [100, 200, 400, 500, 500] },
    { name: 'base above max', base: 10, max: 5, failures: 2, expected: [5, 5] },
  ];
  for (const c of cases) {
    const limiter = new ItemExponentialFailureRateLimiter<string>(c.base, c.max);
    const delays = Array.from({ length: c.failures }, () => limiter.when('a'));
    assert.deepEqual(delays, c.expected, c.name);
    assert.equal(limiter.numRequeues('a'), c.failures, c.name);
  }
});

test('per-item backoff: items are independent, forget resets, huge exponents stay at the cap', () => {
  const limiter = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
  limiter.when('a');
  limiter.when('a');
  assert.equal(limiter.when('b'), 5);
  assert.equal(limiter.when('a'), 20);
  limiter.forget('a');
  assert.equal(limiter.numRequeues('a'), 0);
  assert.equal(limiter.when('a'), 5);
  for (let i = 0; i < 2000; i++) limiter.when('c');
  assert.equal(limiter.when('c'), 1_000_000);
});

test('bucket: burst is free, then tokens arrive at qps', () => {
  const clock = fakeClock();
  const limiter = new BucketRateLimiter<string>(10, 3, clock);
  assert.deepEqual([limiter.when('x'), limiter.when('y'), limiter.when('z')], [0, 0, 0]);
  // The 4th borrows the token that exists in 100ms, the 5th the one after.
  assert.equal(limiter.when('x'), 100);
  assert.equal(limiter.when('x'), 200);
  clock.advance(1000);
  // 10 tokens accrued minus 2 borrowed = 8, capped to the burst of 3.
  assert.deepEqual([limiter.when('a'), limiter.when('a'), limiter.when('a'), limiter.when('a')], [0, 0, 0, 100]);
});

test('max-of: the slower limiter wins, forget reaches every limiter', () => {
  const clock = fakeClock();
  const exp = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
  const limiter = new MaxOfRateLimiter<string>(exp, new BucketRateLimiter<string>(10, 1, clock));
  assert.equal(limiter.when('a'), 5); // bucket has its burst token
  assert.equal(limiter.when('b'), 100); // bucket empty: 100ms beats 5ms
  assert.equal(limiter.numRequeues('a'), 1);
  limiter.forget('a');
  assert.equal(exp.numRequeues('a'), 0);
});

test('default controller limiter: 5ms first retry, 100 burst before the 10 qps bucket bites', () => {
  const clock = fakeClock();
  const limiter = defaultControllerRateLimiter<string>(clock);
  const first = Array.from({ length: 100 }, (_, i) => limiter.when(`k${i}`));
  assert.ok(first.every((delay) => delay === 5));
  assert.equal(limiter.when('k100'), 100);
});
