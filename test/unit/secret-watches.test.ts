import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { SecretWatches } from '../../src/controller/secret-watches.js';
import { capturedLogger } from '../helpers/captured-logs.js';

/**
 * kube-apiserver answers a Secret watch started while its watch cache lags etcd with an ERROR event
 * ("Too large resource version", seen in operator-real-apiserver.e2e after a restart). The server
 * below plays that wire exchange: the first watch gets the ERROR and is left open, later watches get
 * the Secret. The operator must log it once, count it as one failure, and watch again.
 */
test('an ERROR event in a Secret watch is one warning and one backoff step, not two', { timeout: 20_000 }, async (t) => {
  const watchStarts: number[] = [];
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    watchStarts.push(Date.now());
    res.writeHead(200, { 'content-type': 'application/json' });
    open.push(res);
    if (watchStarts.length === 1) {
      const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Too large resource version: 12, current: 9', reason: 'Timeout', code: 504 };
      res.write(JSON.stringify({ type: 'ERROR', object: status }) + '\n');
      return; // left open: the operator must end it itself
    }
    const secret = { kind: 'Secret', apiVersion: 'v1', metadata: { name: 'creds', namespace: 'ns', resourceVersion: '10' } };
    res.write(JSON.stringify({ type: 'ADDED', object: secret }) + '\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const res of open) res.destroy();
    server.close();
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', skipTLSVerify: true, server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });

  const logs = capturedLogger();
  const changed = new Promise<string[]>((resolve) => {
    const watches = new SecretWatches({ kc, logger: logs.logger, onChange: resolve, backoff: { initialMs: 200, maxMs: 60_000 } });
    t.after(() => watches.stop());
    watches.set('ns/main', 'ns', ['creds']);
  });

  assert.deepEqual(await changed, ['ns/main'], 'the restarted watch delivers the Secret');
  const warnings = logs.lines().filter((line) => line.level === 'warn');
  assert.deepEqual(
    warnings.map((line) => [line.message, line.retryInMs]),
    [['Secret watch reported an error; restarting it', 200]],
    'one warning, and the first backoff step (not a second failure for our own abort)',
  );
  assert.equal(watchStarts.length, 2);
  // The abort is ours; the restart waits one backoff step, the initial one.
  assert.ok(watchStarts[1]! - watchStarts[0]! >= 200, 'the restart waited the backoff');
});
