/**
 * docs/operator.md "GitOps and dashboards": every snippet is what the shipped files say (a YAML block
 * names its file on its first line), and every command works on the files it names.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../harness/test-tools.js';

const run = promisify(execFile);
const docs = readFileSync(join(REPO_ROOT, 'docs/operator.md'), 'utf8');
const start = docs.indexOf('## GitOps and dashboards');
const section = docs.slice(start, docs.indexOf('\n## ', start + 1));
const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]! }));
const kubectl = spawnSync('kubectl', ['version', '--client']).status === 0;

test('the section has its snippets', () => {
  assert.ok(start >= 0, 'no "GitOps and dashboards" section');
  assert.deepEqual(blocks.map((b) => b.lang), ['yaml', 'sh', 'sh', 'sh', 'sh']);
});

test('YAML snippets are verbatim parts of the file their first line names', () => {
  for (const block of blocks.filter((b) => b.lang === 'yaml')) {
    const [first, ...rest] = block.body.split('\n');
    const file = /^# (\S+)$/.exec(first!)?.[1];
    assert.ok(file, `first line names the file: ${first}`);
    assert.ok(readFileSync(join(REPO_ROOT, file), 'utf8').includes(rest.join('\n')), `${file} holds the snippet`);
  }
});

test('every file a command names exists', () => {
  const commands = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.body.trim().split('\n'));
  const files = commands.flatMap((c) => c.match(/config\/[\w./-]+/g) ?? []);
  assert.ok(files.length >= 3);
  // The on-demand snapshot commands are the ones the operator e2e runs (annotation, jsonpath wait).
  const annotate = commands.find((c) => c.startsWith('kubectl annotate'));
  assert.match(annotate ?? '', /etcdbackup\.io\/snapshot-requested-at=\$now$/);
  assert.ok(commands.some((c) => c.includes("--for=jsonpath='{.status.lastRequestedSnapshot.requestedAt}'=$now")));
  for (const file of files) assert.ok(existsSync(join(REPO_ROOT, file)), file);
});

test('kubectl apply -k config/prometheus builds the Service, ServiceMonitor and PrometheusRule beside the operator', { skip: kubectl ? false : 'kubectl is not installed' }, async () => {
  const { stdout } = await run('kubectl', ['kustomize', join(REPO_ROOT, 'config/prometheus')]);
  const objects = parseAllDocuments(stdout).map((d) => d.toJSON() as { kind: string; metadata: { name: string; namespace: string }; spec: Record<string, unknown> });
  assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort(), [
    'PrometheusRule/etcd-backup-system/etcd-backup-alerts',
    'Service/etcd-backup-system/etcd-backup-metrics',
    'ServiceMonitor/etcd-backup-system/etcd-backup-metrics',
  ]);
  // The Service selects the operator's pods as config/default deploys them, on the port it serves /metrics on.
  const { stdout: operator } = await run('kubectl', ['kustomize', join(REPO_ROOT, 'config/default')]);
  const deployment = parseAllDocuments(operator).map((d) => d.toJSON() as Record<string, never>).find((o) => o.kind === 'Deployment') as unknown as {
    metadata: { namespace: string };
    spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ ports: Array<{ name: string }> }> } } };
  };
  const service = objects.find((o) => o.kind === 'Service')!;
  assert.equal(service.metadata.namespace, deployment.metadata.namespace);
  for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>)) assert.equal(deployment.spec.template.metadata.labels[k], v);
  const targetPort = (service.spec.ports as Array<{ targetPort: string }>)[0]!.targetPort;
  assert.ok(deployment.spec.template.spec.containers[0]!.ports.some((p) => p.name === targetPort), `container port ${targetPort}`);
  const monitor = objects.find((o) => o.kind === 'ServiceMonitor')!;
  assert.deepEqual((monitor.spec.endpoints as Array<{ honorLabels: boolean }>)[0]!.honorLabels, true);
});

test('the Grafana ConfigMap command works on the dashboard file', { skip: kubectl ? false : 'kubectl is not installed' }, async () => {
  const { stdout } = await run('kubectl', ['create', 'configmap', 'etcd-backup-dashboard', `--from-file=${join(REPO_ROOT, 'config/grafana/etcd-backup-dashboard.json')}`, '--dry-run=client', '-o', 'json']);
  const cm = JSON.parse(stdout) as { data: Record<string, string> };
  const dashboard = JSON.parse(cm.data['etcd-backup-dashboard.json']!) as { uid: string; panels: unknown[] };
  assert.equal(dashboard.uid, 'etcd-backup-operator');
  assert.ok(dashboard.panels.length >= 10);
});
