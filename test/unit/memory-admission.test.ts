import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admit, readCgroupMemoryLimit, workerCost, WORKER_OVERHEAD_BYTES } from '../../src/controller/memory-admission.js';

const MiB = 2 ** 20;

test('a worker is admitted while base + admitted + its cost fit the limit, to the byte', () => {
  const memory = { limitBytes: 1000 * MiB, baseBytes: 200 * MiB };
  assert.deepEqual(admit(memory, [300 * MiB], 500 * MiB), { admitted: true });
  const refused = admit(memory, [300 * MiB], 500 * MiB + 1);
  assert.equal(refused.admitted, false);
  assert.match(!refused.admitted ? refused.message : '', /needs 500 MiB .* has 500 MiB left of its 1000 MiB memory limit \(base 200 MiB \+ 1 running worker\)/);
});

test('no limit admits everything; a base larger than the limit admits nothing', () => {
  assert.deepEqual(admit({ baseBytes: 200 * MiB }, [10_000 * MiB], 10_000 * MiB), { admitted: true });
  const refused = admit({ limitBytes: 100 * MiB, baseBytes: 200 * MiB }, [], 1);
  assert.equal(refused.admitted, false);
  assert.match(!refused.admitted ? refused.message : '', /has 0 MiB left/);
});

test("a worker costs its budget plus its runner model's overhead", () => {
  assert.equal(workerCost('process', 64 * MiB), 64 * MiB + WORKER_OVERHEAD_BYTES.process);
  assert.ok(WORKER_OVERHEAD_BYTES.inline < WORKER_OVERHEAD_BYTES.thread && WORKER_OVERHEAD_BYTES.thread < WORKER_OVERHEAD_BYTES.process);
});

test('the cgroup limit: v2 memory.max, else v1; "max" and v1\'s huge value mean none', () => {
  const files = (map: Record<string, string>) => (path: string) => {
    if (!(path in map)) throw new Error('ENOENT');
    return map[path]!;
  };
  assert.equal(readCgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': '2147483648\n' })), 2 * 1024 * MiB);
  assert.equal(readCgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n' })), undefined);
  assert.equal(readCgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '536870912' })), 512 * MiB);
  assert.equal(readCgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })), undefined);
  assert.equal(readCgroupMemoryLimit(files({})), undefined);
});
