import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ItemExponentialFailureRateLimiter } from '../../src/controller/rate-limiter.js';
import { WorkQueue } from '../../src/controller/workqueue.js';

/** Takes whatever is ready without waiting. */
async function drainReady(queue: WorkQueue<string>): Promise<string[]> {
  const items: string[] = [];
  while (queue.len() > 0) {
    const item = await queue.get();
    if (item !== undefined) items.push(item);
  }
  return items;
}

test('queue semantics (table)', async () => {
  const cases: Array<{ name: string; run: (q: WorkQueue<string>) => Promise<unknown>; expected: unknown }> = [
    {
      name: 'dedups waiting items and keeps first-add order',
      run: async (q) => {
        q.add('a');
        q.add('b');
        q.add('a');
        return drainReady(q);
      },
      expected: ['a', 'b'],
    },
    {
      name: 'an item added while processing is not handed out until done',
      run: async (q) => {
        q.add('a');
        const first = await q.get();
        q.add('a');
        const lenWhileProcessing = q.len();
        q.done(first!);
        const lenAfterDone = q.len();
        return [lenWhileProcessing, lenAfterDone, await q.get()];
      },
      expected: [0, 1, 'a'],
    },
    {
      name: 'done without a re-add leaves the queue empty',
      run: async (q) => {
        q.add('a');
        q.done((await q.get())!);
        return q.len();
      },
      expected: 0,
    },
    {
      name: 'a waiting get receives the next add',
      run: async (q) => {
        const pending = q.get();
        q.add('x');
        return pending;
      },
      expected: 'x',
    },
    {
      name: 'shutDown resolves waiting gets with undefined and ignores adds',
      run: async (q) => {
        const pending = q.get();
        q.shutDown();
        q.add('a');
        return [await pending, await q.get(), q.len()];
      },
      expected: [undefined, undefined, 0],
    },
  ];
  for (const c of cases) {
    const queue = new WorkQueue<string>();
    assert.deepEqual(await c.run(queue), c.expected, c.name);
    queue.shutDown();
  }
});

test('one key never runs on two workers at once', async () => {
  const queue = new WorkQueue<string>();
  const running = new Set<string>();
  let overlaps = 0;
  let processed = 0;
  const worker = async () => {
    for (;;) {
      const item = await queue.get();
      if (item === undefined) return;
      if (running.has(item)) overlaps++;
      running.add(item);
      await sleep(2);
      running.delete(item);
      processed++;
      queue.done(item);
    }
  };
  const workers = [worker(), worker(), worker(), worker()];
  // Bursts of adds: within a burst each key is either waiting (deduped) or processing (marked dirty).
  for (let burst = 0; burst < 5; burst++) {
    for (let i = 0; i < 10; i++) queue.add(`k${i % 3}`);
    await sleep(3);
  }
  await sleep(30);
  await queue.shutDownWithDrain();
  await Promise.all(workers);
  assert.equal(overlaps, 0);
  assert.ok(processed >= 3 && processed <= 30, `processed ${processed}: adds during processing must coalesce`);
});

test('addAfter: delays, keeps the earliest time, dedups with add', async () => {
  const queue = new WorkQueue<string>();
  queue.addAfter('a', 40);
  queue.addAfter('a', 10); // earlier wins
  queue.addAfter('a', 200); // later is ignored
  assert.equal(queue.len(), 0);
  queue.addAfter('b', 100); // after a's earliest time, before its ignored ones
  const started = Date.now();
  assert.equal(await queue.get(), 'a', "a's earliest time (10 ms) won: it comes before b (100 ms)");
  const waited = Date.now() - started;
  assert.ok(waited >= 8, `waited ${waited}ms`);
  queue.done('a');
  await sleep(60);
  assert.equal(queue.len(), 0, 'the superseded 40ms timer must not re-add');
  queue.addAfter('b', 0);
  assert.equal(queue.len(), 1, 'zero delay adds at once');
  queue.shutDown();
});

test('addRateLimited backs off per item; forget resets', async () => {
  const queue = new WorkQueue<string>(new ItemExponentialFailureRateLimiter<string>(10, 1000));
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    queue.addRateLimited('a');
    const item = await queue.get();
    delays.push(Date.now() - started);
    queue.done(item!);
  }
  assert.equal(queue.numRequeues('a'), 3);
  assert.ok(delays[0]! >= 8 && delays[1]! >= 18 && delays[2]! >= 38, `delays ${delays.join(',')}`);
  queue.forget('a');
  assert.equal(queue.numRequeues('a'), 0);
  queue.shutDown();
});

test('shutDownWithDrain waits for in-flight items', async () => {
  const queue = new WorkQueue<string>();
  queue.add('a');
  const item = await queue.get();
  let drained = false;
  const drain = queue.shutDownWithDrain().then(() => (drained = true));
  await sleep(5);
  assert.equal(drained, false);
  queue.done(item!);
  await drain;
  assert.equal(drained, true);
});
