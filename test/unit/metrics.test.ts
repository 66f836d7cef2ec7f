import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import { startHttpServer } from '../../src/observability/http-server.js';
import { silentLogger } from '../../src/observability/logger.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';

const base: SupervisorReport = {
  archivedRevision: 150,
  etcdRevision: 160,
  lagRevisions: 10,
  replayRevisions: 40,
  memory: { budgetBytes: 1000, peakBytes: 500, usedBytes: 0 },
  fullSnapshot: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:10Z' },
  delta: { consecutiveFailures: 1, lastFailureTime: '2025-01-01T00:00:20Z', lastError: 'x' },
  bytesUploaded: 100,
  uploadedBytes: { full: 60, delta: 40 },
};

test('metrics follow reports; counters survive supervisor restarts; forget drops series', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  metrics.observeReport('ns', 'a', base);
  // same failure again: not recounted; 150 more full bytes
  metrics.observeReport('ns', 'a', { ...base, bytesUploaded: 250, uploadedBytes: { full: 210, delta: 40 } });
  metrics.supervisorStarted('ns', 'a');
  // a new run counts from zero again
  metrics.observeReport('ns', 'a', { ...base, bytesUploaded: 50, uploadedBytes: { full: 0, delta: 50 }, delta: { consecutiveFailures: 0 } });
  const text = await metrics.registry.metrics();
  const value = (line: string) => {
    const found = text.split('\n').find((l) => l.startsWith(line + ' '));
    assert.ok(found, `no ${line} in\n${text}`);
    return Number(found.slice(line.length + 1));
  };
  assert.equal(value('etcdbackup_uploaded_bytes_total{namespace="ns",name="a",kind="full"}'), 210);
  assert.equal(value('etcdbackup_uploaded_bytes_total{namespace="ns",name="a",kind="delta"}'), 90);
  assert.equal(value('etcdbackup_memory_used_bytes{namespace="ns",name="a"}'), 0);
  assert.equal(value('etcdbackup_failures_total{namespace="ns",name="a",kind="delta"}'), 1);
  assert.equal(value('etcdbackup_archived_revision{namespace="ns",name="a"}'), 150);
  assert.equal(value('etcdbackup_lag_revisions{namespace="ns",name="a"}'), 10);
  assert.equal(value('etcdbackup_replay_revisions{namespace="ns",name="a"}'), 40);
  assert.equal(value('etcdbackup_memory_peak_bytes{namespace="ns",name="a"}'), 500);
  assert.equal(value('etcdbackup_last_success_timestamp_seconds{namespace="ns",name="a",kind="full"}'), 1735689610);
  metrics.forget('ns', 'a');
  assert.doesNotMatch(await metrics.registry.metrics(), /name="a"/);
});

test('verification metrics: last success time, failures counted once', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const failed = { consecutiveFailures: 1, lastFailureTime: '2025-01-01T00:01:00Z', lastError: 'x' };
  metrics.observeReport('ns', 'v', { ...base, verification: { consecutiveFailures: 0 } });
  metrics.observeReport('ns', 'v', { ...base, verification: failed });
  metrics.observeReport('ns', 'v', { ...base, verification: failed }); // same failure: not recounted
  metrics.observeReport('ns', 'v', { ...base, verification: { ...failed, consecutiveFailures: 2, lastFailureTime: '2025-01-01T00:02:00Z' } });
  metrics.observeReport('ns', 'v', { ...base, verification: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:03:00Z', lastFailureTime: '2025-01-01T00:02:00Z' } });
  const text = await metrics.registry.metrics();
  assert.match(text, /^etcdbackup_verification_failures_total\{namespace="ns",name="v"\} 2$/m, text);
  assert.match(text, /^etcdbackup_last_verification_success_timestamp_seconds\{namespace="ns",name="v"\} 1735689780$/m, text);
  metrics.forget('ns', 'v');
  assert.doesNotMatch(await metrics.registry.metrics(), /name="v"/);
});

test('http server: probes and metrics', async () => {
  const metrics = new OperatorMetrics();
  let ready = false;
  const server = await startHttpServer({
    port: 0,
    host: '127.0.0.1',
    registry: metrics.registry,
    healthz: () => ({ ok: true }),
    readyz: () => (ready ? { ok: true } : { ok: false, reason: 'informer not synced' }),
    logger: silentLogger(),
  });
  try {
    const url = `http://127.0.0.1:${server.port}`;
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const notReady = await fetch(`${url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), 'informer not synced\n');
    ready = true;
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    const scrape = await fetch(`${url}/metrics`);
    assert.equal(scrape.status, 200);
    const text = await scrape.text();
    // The standard names, as dashboards and Kubernetes mixins expect them.
    assert.match(text, /^process_resident_memory_bytes \d/m);
    assert.match(text, /^process_cpu_seconds_total \d/m);
    assert.doesNotMatch(text, /etcdbackup_operator_process_/);
    assert.equal((await fetch(`${url}/nope`)).status, 404);
  } finally {
    await server.close();
  }
});

test('counters exist at 0 from the first report, before any failure; restarts from the first start', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  metrics.supervisorStarted('ns', 'fresh');
  let text = await metrics.registry.metrics();
  for (const series of [
    'etcdbackup_failures_total{namespace="ns",name="fresh",kind="full"} 0',
    'etcdbackup_failures_total{namespace="ns",name="fresh",kind="delta"} 0',
    'etcdbackup_uploaded_bytes_total{namespace="ns",name="fresh",kind="full"} 0',
    'etcdbackup_uploaded_bytes_total{namespace="ns",name="fresh",kind="delta"} 0',
    'etcdbackup_supervisor_restarts_total{namespace="ns",name="fresh"} 0',
    'etcdbackup_verification_failures_total{namespace="ns",name="fresh"} 0',
  ]) {
    assert.ok(text.split('\n').includes(series), `${series} in\n${text}`);
  }
  // A report alone (the operator restarted while the worker ran) initialises them too.
  metrics.observeReport('ns', 'other', { ...base, delta: { consecutiveFailures: 0 } });
  text = await metrics.registry.metrics();
  assert.ok(text.split('\n').includes('etcdbackup_failures_total{namespace="ns",name="other",kind="full"} 0'), text);
});

test('last success is seeded from the stored snapshot and delta; durations are histograms; worker RSS per EtcdBackup', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  metrics.observeReport('ns', 's', {
    ...base,
    // A worker that just started: nothing done yet, but the store holds a snapshot and a delta.
    fullSnapshot: { consecutiveFailures: 0 },
    delta: { consecutiveFailures: 0 },
    lastFullSnapshot: { revision: 5, time: '2025-01-01T00:00:00.250Z', object: 'full/x', sizeBytes: 4096, sha256: 'ab' },
    lastDeltaSnapshot: { fromRevision: 6, toRevision: 9, time: '2025-01-01T00:01:00Z', object: 'delta/y' },
    memory: { budgetBytes: 1000, peakBytes: 500, usedBytes: 300, rssBytes: 123456 },
    cadence: { fullSnapshotIntervalSeconds: 3600, deltaPeriodSeconds: 20 },
  });
  const done = { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T01:00:00Z', lastDurationSeconds: 42 };
  metrics.observeReport('ns', 's', { ...base, fullSnapshot: done });
  metrics.observeReport('ns', 's', { ...base, fullSnapshot: done }); // the same success: observed once
  const text = await metrics.registry.metrics();
  const lines = text.split('\n');
  assert.ok(lines.includes('etcdbackup_last_success_timestamp_seconds{namespace="ns",name="s",kind="delta"} 1735689660'), text);
  assert.ok(lines.includes('etcdbackup_last_full_snapshot_size_bytes{namespace="ns",name="s"} 4096'), text);
  assert.ok(lines.includes('etcdbackup_worker_resident_memory_bytes{namespace="ns",name="s"} 123456'), text);
  assert.ok(lines.includes('etcdbackup_full_snapshot_interval_seconds{namespace="ns",name="s"} 3600'), text);
  assert.ok(lines.includes('etcdbackup_delta_period_seconds{namespace="ns",name="s"} 20'), text);
  assert.ok(lines.includes('etcdbackup_full_snapshot_duration_seconds_count{namespace="ns",name="s"} 1'), text);
  assert.ok(lines.includes('etcdbackup_full_snapshot_duration_seconds_sum{namespace="ns",name="s"} 42'), text);
  assert.ok(lines.includes('etcdbackup_full_snapshot_duration_seconds_bucket{le="60",namespace="ns",name="s"} 1'), text);
  metrics.forget('ns', 's');
  assert.doesNotMatch(await metrics.registry.metrics(), /name="s"/);
});

test('etcdbackup_backup_fresh follows the BackupFresh condition; Unknown removes the series', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const status = (value: 'True' | 'False' | 'Unknown') => ({
    conditions: [{ type: 'BackupFresh', status: value, reason: 'R', message: 'm', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 1 }],
  });
  const line = 'etcdbackup_backup_fresh{namespace="ns",name="a"}';
  metrics.observeFreshness('ns', 'a', status('True'));
  assert.match(await metrics.registry.metrics(), new RegExp(`${line.replace(/[{}]/g, '\\$&')} 1\\n`));
  metrics.observeFreshness('ns', 'a', status('False'));
  assert.match(await metrics.registry.metrics(), new RegExp(`${line.replace(/[{}]/g, '\\$&')} 0\\n`));
  metrics.observeFreshness('ns', 'a', status('Unknown'));
  assert.doesNotMatch(await metrics.registry.metrics(), /etcdbackup_backup_fresh\{/);
  metrics.observeFreshness('ns', 'a', status('False'));
  metrics.forget('ns', 'a');
  assert.doesNotMatch(await metrics.registry.metrics(), /name="a"/);
});
