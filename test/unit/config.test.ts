import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { validateEtcdBackup } from '../../src/api/validate.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const hasKubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

type Doc = Record<string, unknown> & { kind: string; metadata: { name: string } };

function kustomize(dir: string): Doc[] {
  const out = execFileSync('kubectl', ['kustomize', `${ROOT}config/${dir}`], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJSON() as Doc);
}

test('config/default builds and holds CRD, RBAC and the manager', { skip: !hasKubectl && 'kubectl not installed' }, () => {
  const docs = kustomize('default');
  const kinds = docs.map((d) => d.kind).sort();
  assert.deepEqual(kinds, [
    'ClusterRole',
    'ClusterRole', // etcdbackup-editor, aggregated into admin/edit
    'ClusterRole', // etcdbackup-viewer, aggregated into view
    'ClusterRoleBinding',
    'CustomResourceDefinition',
    'Deployment',
    'Namespace',
    'Role',
    'RoleBinding',
    'ServiceAccount',
  ]);
  interface Container {
    args: string[];
    securityContext: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
    resources: { limits: { memory?: string; cpu?: string } };
    livenessProbe: { httpGet: { path: string } };
    readinessProbe: { httpGet: { path: string } };
  }
  const deployment = docs.find((d) => d.kind === 'Deployment') as unknown as {
    spec: { template: { spec: { securityContext: Record<string, unknown>; serviceAccountName: string; containers: Container[] } } };
  };
  const pod = deployment.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.serviceAccountName, 'etcd-backup-controller-manager');
  const container = pod.containers[0]!;
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.ok(container.resources.limits.memory && container.resources.limits.cpu);
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.deepEqual(container.args.slice(0, 1), ['operator']);
  // runner: pod workers default to the operator's own image.
  const env = (container as unknown as { env: Array<{ name: string; value?: string }> }).env;
  const image = (container as unknown as { image: string }).image;
  assert.equal(env.find((e) => e.name === 'ETCD_BACKUP_WORKER_IMAGE')?.value, image);
});

test('RBAC grants exactly the verbs the controller uses', { skip: !hasKubectl && 'kubectl not installed' }, () => {
  const docs = kustomize('rbac');
  const rules = (kind: string) =>
    Object.fromEntries(
      ((docs.find((d) => d.kind === kind && (kind !== 'ClusterRole' || d.metadata.name === 'manager-role')) as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }).rules).map(
        (r) => [`${r.apiGroups[0] || 'core'}/${r.resources[0]}`, [...r.verbs].sort()],
      ),
    );
  assert.deepEqual(rules('ClusterRole'), {
    'etcdbackup.io/etcdbackups': ['get', 'list', 'update', 'watch'],
    'etcdbackup.io/etcdbackups/status': ['patch'],
    'etcdbackup.io/etcdbackups/finalizers': ['update'],
    'core/secrets': ['get', 'list', 'watch'],
    'events.k8s.io/events': ['create', 'patch'],
    // spec.runner: pod (src/controller/pod-runner-reconcile.ts reconcile / remove)
    'apps/deployments': ['create', 'delete', 'get', 'update'],
    'core/configmaps': ['create', 'delete', 'get', 'update'],
  });
  assert.deepEqual(rules('Role'), { 'coordination.k8s.io/leases': ['create', 'get', 'update'] });
});

test('samples are valid EtcdBackups (local and S3)', () => {
  for (const file of ['etcdbackup_v1alpha1_local.yaml', 'etcdbackup_v1alpha1_s3.yaml']) {
    const result = validateEtcdBackup(parse(readFileSync(`${ROOT}config/samples/${file}`, 'utf8')));
    assert.ok(result.ok, `${file}: ${result.ok ? '' : result.problems.join('; ')}`);
  }
});
