import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { processTree, sampleProcess, sampleTree } from '../../bench/lib/process-tree.js';

test('processTree finds a spawned grandchild; samples read real RSS, PSS and CPU; a gone process gives undefined', async () => {
  // sh -> sleep: the grandchild is found through the child's own children list.
  // Its own process group, so that killing the group takes the sleep with it.
  const child = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore', detached: true });
  try {
    let tree: number[] = [];
    for (let i = 0; i < 50 && tree.length < 3; i++) {
      tree = await processTree(process.pid);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(tree.includes(child.pid!), 'the child is in the tree');
    assert.ok(tree.length >= 3, `this process, sh and sleep: ${tree.join(' ')}`);

    // Burn a little CPU so utime moves past one clock tick.
    const end = Date.now() + 50;
    while (Date.now() < end);
    const self = await sampleProcess(process.pid);
    assert.ok(self, 'this process can be sampled');
    assert.ok(self.rssBytes > 10 * 2 ** 20, `RSS of a node process is above 10 MiB: ${self.rssBytes}`);
    assert.ok(self.pssBytes > 0 && self.pssBytes <= self.rssBytes, `0 < PSS <= RSS: ${self.pssBytes}`);
    assert.ok(self.cpuSeconds > 0, 'CPU time is counted');

    const samples = await sampleTree(process.pid);
    assert.ok(samples.some((s) => s.pid === child.pid));
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  }
  assert.equal(await sampleProcess(child.pid!), undefined, 'a reaped process is gone');
});
