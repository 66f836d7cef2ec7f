/**
 * config/rbac's etcdbackup-editor and etcdbackup-viewer ClusterRoles in a real kube-apiserver (RBAC on):
 * bound to a ServiceAccount, the viewer may read EtcdBackups and not change them, the editor may do both;
 * both carry the labels that aggregate them into the built-in admin/edit/view roles (aggregation itself
 * is kube-controller-manager's, which the harness does not run).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { startRealKubeApiServer, type RealKubeApiServer } from '../harness/kube-apiserver.js';
import { kubeApiServerBinary, REPO_ROOT, skipUnlessBuilt } from '../harness/test-tools.js';

const ROLES = { editor: 'config/rbac/etcdbackup_editor_role.yaml', viewer: 'config/rbac/etcdbackup_viewer_role.yaml' };

test('the roles carry the aggregation labels of the built-in roles', () => {
  const labels = (file: string) => (parse(readFileSync(join(REPO_ROOT, file), 'utf8')) as { metadata: { labels: Record<string, string> } }).metadata.labels;
  assert.deepEqual(labels(ROLES.editor), {
    'rbac.authorization.k8s.io/aggregate-to-admin': 'true',
    'rbac.authorization.k8s.io/aggregate-to-edit': 'true',
  });
  assert.deepEqual(labels(ROLES.viewer), { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' });
});

describe('etcdbackup-editor and etcdbackup-viewer in a real kube-apiserver', { skip: skipUnlessBuilt(kubeApiServerBinary(), 'kube-apiserver') }, () => {
  let api: RealKubeApiServer;

  before(async () => {
    api = await startRealKubeApiServer();
    await api.kubectl(['apply', '-f', join(REPO_ROOT, 'crds/'), '-f', join(REPO_ROOT, ROLES.editor), '-f', join(REPO_ROOT, ROLES.viewer)]);
    await api.kubectl(['create', 'namespace', 'team']);
    for (const role of ['editor', 'viewer']) {
      await api.kubectl(['-n', 'team', 'create', 'serviceaccount', role]);
      await api.kubectl(['-n', 'team', 'create', 'rolebinding', role, `--clusterrole=etcdbackup-${role}`, `--serviceaccount=team:${role}`]);
    }
  });

  after(async () => {
    await api?.stop();
  });

  const can = async (who: string, verb: string, resource = 'etcdbackups.etcdbackup.io'): Promise<string> => {
    const [plural, subresource] = resource.split('/');
    const args = ['auth', 'can-i', verb, plural!, ...(subresource ? [`--subresource=${subresource}`] : [])];
    return (await api.kubectl([...args, '-n', 'team', `--as=system:serviceaccount:team:${who}`]).catch((err: { stdout?: string }) => err.stdout ?? 'error')).trim();
  };

  test('the viewer reads, the editor also writes; neither writes status', async () => {
    const table: Array<[who: string, verb: string, resource: string | undefined, answer: string]> = [
      ['viewer', 'get', undefined, 'yes'],
      ['viewer', 'list', undefined, 'yes'],
      ['viewer', 'watch', undefined, 'yes'],
      ['viewer', 'create', undefined, 'no'],
      ['viewer', 'delete', undefined, 'no'],
      ['editor', 'create', undefined, 'yes'],
      ['editor', 'patch', undefined, 'yes'],
      ['editor', 'delete', undefined, 'yes'],
      ['editor', 'update', 'etcdbackups.etcdbackup.io/status', 'no'],
      ['viewer', 'get', 'secrets', 'no'],
    ];
    const got = [];
    for (const [who, verb, resource] of table) got.push(await can(who, verb, resource));
    assert.deepEqual(got, table.map((row) => row[3]));
  });
});
