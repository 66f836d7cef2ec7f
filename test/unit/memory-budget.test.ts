import assert from 'node:assert/strict';
import { setImmediate as tick, setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { MemoryBudget, type Reservation } from '../../src/budget/memory-budget.js';

/** Lets queued promise continuations run, so that "still waiting" is observable. */
async function settle(): Promise<void> {
  await tick();
  await tick();
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { readonly state: 'pending' | 'resolved' | 'rejected'; readonly promise: Promise<T> } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  return {
    get state() {
      return state;
    },
    promise,
  };
}

const constructorCases: Array<{ name: string; limit: number }> = [
  { name: 'zero', limit: 0 },
  { name: 'negative', limit: -1 },
  { name: 'fractional', limit: 1.5 },
  { name: 'NaN', limit: Number.NaN },
  { name: 'Infinity', limit: Number.POSITIVE_INFINITY },
  { name: 'not a safe integer', limit: 2 ** 63 },
];

for (const c of constructorCases) {
  test(`constructor rejects a ${c.name} limit with RangeError`, () => {
    assert.throws(() => new MemoryBudget(c.limit), RangeError);
  });
}

const sizeCases: Array<{ name: string; bytes: number }> = [
  { name: 'larger than the limit', bytes: 101 },
  { name: 'negative', bytes: -1 },
  { name: 'fractional', bytes: 1.5 },
  { name: 'NaN', bytes: Number.NaN },
];

for (const c of sizeCases) {
  test(`a reservation ${c.name} is a RangeError (tryReserve throws, reserve rejects)`, async () => {
    const budget = new MemoryBudget(100);
    assert.throws(() => budget.tryReserve(c.bytes), RangeError);
    await assert.rejects(budget.reserve(c.bytes), RangeError);
    assert.equal(budget.usedBytes, 0);
  });
}

test('reserve and release account for used, available and peak bytes', async () => {
  const budget = new MemoryBudget(100);
  const steps: Array<{ action: () => unknown; used: number; peak: number }> = [];
  let a: Reservation | undefined;
  let b: Reservation | undefined;
  steps.push(
    { action: () => (a = budget.tryReserve(30)), used: 30, peak: 30 },
    { action: () => (b = budget.tryReserve(50)), used: 80, peak: 80 },
    { action: () => a?.release(), used: 50, peak: 80 },
    { action: () => budget.tryReserve(10), used: 60, peak: 80 },
    { action: () => b?.release(), used: 10, peak: 80 },
  );
  for (const [i, step] of steps.entries()) {
    step.action();
    assert.equal(budget.usedBytes, step.used, `step ${i} used`);
    assert.equal(budget.availableBytes, 100 - step.used, `step ${i} available`);
    assert.equal(budget.peakBytes, step.peak, `step ${i} peak`);
  }
  const whole = await budget.reserve(90);
  assert.equal(whole.bytes, 90);
  assert.equal(budget.usedBytes, 100);
  assert.equal(budget.peakBytes, 100);
});

test('tryReserve returns undefined when the bytes do not fit', () => {
  const budget = new MemoryBudget(100);
  assert.equal(budget.tryReserve(70)?.bytes, 70);
  assert.equal(budget.tryReserve(31), undefined);
  assert.equal(budget.usedBytes, 70);
  assert.equal(budget.tryReserve(30)?.bytes, 30);
  assert.equal(budget.usedBytes, 100);
});

test('a zero-byte reservation always succeeds at once', async () => {
  const budget = new MemoryBudget(10);
  budget.tryReserve(10);
  assert.equal((await budget.reserve(0)).bytes, 0);
});

test('release is idempotent and never gives back bytes held by others', () => {
  const budget = new MemoryBudget(100);
  const a = budget.tryReserve(40)!;
  budget.tryReserve(30);
  a.release();
  a.release();
  a.release();
  assert.equal(a.bytes, 0);
  assert.equal(budget.usedBytes, 30);
});

test('shrink gives back part of a reservation, capped at what it holds', () => {
  const budget = new MemoryBudget(100);
  const a = budget.tryReserve(50)!;
  const cases: Array<{ shrink: number; held: number }> = [
    { shrink: 20, held: 30 },
    { shrink: 0, held: 30 },
    { shrink: -5, held: 30 },
    { shrink: 1000, held: 0 },
  ];
  for (const c of cases) {
    a.shrink(c.shrink);
    assert.equal(a.bytes, c.held, `shrink(${c.shrink})`);
    assert.equal(budget.usedBytes, c.held, `shrink(${c.shrink})`);
  }
});

test('waiters are served FIFO: a queued large request is not starved by later small ones', async () => {
  const budget = new MemoryBudget(100);
  const first = budget.tryReserve(80)!;
  const order: string[] = [];
  const big = budget.reserve(50).then((r) => (order.push('big'), r));
  const small = budget.reserve(10).then((r) => (order.push('small'), r));
  await settle();
  // 10 bytes would fit now, but the 50 is queued ahead.
  assert.deepEqual(order, []);
  assert.equal(budget.tryReserve(10), undefined);
  assert.equal(budget.usedBytes, 80);

  first.release();
  const [bigR, smallR] = await Promise.all([big, small]);
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(bigR.bytes, 50);
  assert.equal(smallR.bytes, 10);
  assert.equal(budget.usedBytes, 60);
  assert.equal(budget.peakBytes, 80);
});

test('a waiter is served only when enough is released, and keeps its place meanwhile', async () => {
  const budget = new MemoryBudget(100);
  const a = budget.tryReserve(60)!;
  const b = budget.tryReserve(40)!;
  const waiting = track(budget.reserve(70));
  a.shrink(30);
  await settle();
  assert.equal(waiting.state, 'pending', '30 free of 70 needed');
  b.release();
  await settle();
  assert.equal(waiting.state, 'resolved', '70 free after releasing b');
  assert.equal(budget.usedBytes, 100);
});

test('abort while waiting rejects with the signal reason, leaves the queue and lets the next waiter in', async () => {
  const budget = new MemoryBudget(100);
  budget.tryReserve(80);
  const controller = new AbortController();
  const head = track(budget.reserve(50, controller.signal));
  // 20 fits, but waits behind the head.
  const next = track(budget.reserve(20));
  await settle();
  assert.equal(next.state, 'pending');

  const reason = new Error('backup cancelled');
  controller.abort(reason);
  await assert.rejects(head.promise, (err) => err === reason);
  await settle();
  assert.equal(next.state, 'resolved');
  assert.equal(budget.usedBytes, 100);
});

test('abort with a non-Error reason rejects with an Error', async () => {
  const budget = new MemoryBudget(10);
  budget.tryReserve(10);
  const controller = new AbortController();
  const waiting = budget.reserve(5, controller.signal);
  controller.abort('stop');
  await assert.rejects(waiting, { name: 'Error', message: 'aborted' });
  assert.equal(budget.usedBytes, 10);
});

test('an already aborted signal rejects at once when the bytes do not fit', async () => {
  const budget = new MemoryBudget(10);
  budget.tryReserve(10);
  const reason = new Error('gone');
  await assert.rejects(budget.reserve(5, AbortSignal.abort(reason)), (err) => err === reason);
  // Nothing was queued: a later release is not swallowed by the aborted request.
  assert.equal(budget.tryReserve(0)?.bytes, 0);
});

test('a served waiter ignores a later abort', async () => {
  const budget = new MemoryBudget(10);
  const a = budget.tryReserve(10)!;
  const controller = new AbortController();
  const waiting = budget.reserve(5, controller.signal);
  a.release();
  const r = await waiting;
  controller.abort();
  assert.equal(r.bytes, 5);
  assert.equal(budget.usedBytes, 5);
});

test('tryGrow takes more bytes only when they fit and nobody is queued', async () => {
  const budget = new MemoryBudget(100);
  const r = budget.tryReserve(50)!;
  assert.equal(r.tryGrow(0), true);
  assert.equal(r.tryGrow(30), true);
  assert.equal(r.bytes, 80);
  assert.equal(r.tryGrow(21), false);
  assert.equal(r.bytes, 80);
  assert.equal(budget.usedBytes, 80);
  assert.equal(budget.peakBytes, 80);

  const other = budget.tryReserve(10)!;
  const queued = track(budget.reserve(50));
  other.release();
  // 10 bytes are free but a waiter is queued: growing must not jump the queue.
  assert.equal(r.tryGrow(5), false);
  r.shrink(40);
  await settle();
  assert.equal(queued.state, 'resolved');
  assert.equal(budget.usedBytes, 90);
});

test('grow waits in the FIFO queue, then the reservation holds the sum and releases it all', async () => {
  const budget = new MemoryBudget(100);
  const r = budget.tryReserve(30)!;
  const other = budget.tryReserve(60)!;
  const growing = track(r.grow(40));
  await settle();
  assert.equal(growing.state, 'pending');
  assert.equal(r.bytes, 30);
  other.release();
  await growing.promise;
  assert.equal(r.bytes, 70);
  assert.equal(budget.usedBytes, 70);
  r.release();
  r.release();
  assert.equal(budget.usedBytes, 0);
});

test('grow by zero or less returns at once', async () => {
  const budget = new MemoryBudget(10);
  const r = budget.tryReserve(10)!;
  await r.grow(0);
  await r.grow(-3);
  assert.equal(r.bytes, 10);
});

test('grow aborted while waiting rejects and keeps what was held', async () => {
  const budget = new MemoryBudget(100);
  const r = budget.tryReserve(30)!;
  budget.tryReserve(70);
  const controller = new AbortController();
  const growing = r.grow(20, controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(growing, { message: 'stop' });
  assert.equal(r.bytes, 30);
  assert.equal(budget.usedBytes, 100);
});

test(
  'grow past the limit (held + extra > limit) is a RangeError, like an oversized reservation',
  async () => {
    const budget = new MemoryBudget(100);
    const r = budget.tryReserve(60)!;
    const controller = new AbortController();
    const outcome = await Promise.race([
      r.grow(50, controller.signal).then(
        () => 'grew',
        (err: unknown) => err,
      ),
      // Nothing else holds bytes, so a request that could ever be served is served at once.
      delay(20).then(() => 'still waiting'),
    ]);
    controller.abort(); // do not leave a waiter behind whatever happened
    assert.ok(outcome instanceof RangeError, `got ${String(outcome)}`);
  },
);

test(
  'tryGrow with a size that is not a byte count is a RangeError and leaves the budget intact',
  () => {
    const budget = new MemoryBudget(100);
    const r = budget.tryReserve(10)!;
    assert.throws(() => r.tryGrow(Number.NaN), RangeError);
    assert.throws(() => r.tryGrow(1.5), RangeError);
    assert.equal(budget.usedBytes, 10);
  },
);
