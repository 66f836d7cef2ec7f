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
    'ClusterRoleBinding',
    'CustomResourceDefinition',
    'Deployment',
    'Namespace',
    'PersistentVolumeClaim',
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
  // The local sample's path is on a PersistentVolumeClaim: an emptyDir would lose backups with the pod.
  const mounts = (container as unknown as { volumeMounts: Array<{ name: string; mountPath: string }> }).volumeMounts;
  const backups = mounts.find((m) => m.mountPath === '/var/backups/etcd');
  const volumes = (pod as unknown as { volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> }).volumes;
  const claim = volumes.find((v) => v.name === backups?.name)?.persistentVolumeClaim?.claimName;
  assert.ok(claim, 'the backup directory is a PersistentVolumeClaim');
  assert.ok(docs.some((d) => d.kind === 'PersistentVolumeClaim' && d.metadata.name === claim), `the claim ${claim} is part of config/default`);
});

test('RBAC grants exactly the verbs the controller uses', { skip: !hasKubectl && 'kubectl not installed' }, () => {
  const docs = kustomize('rbac');
  const rules = (kind: string) =>
    Object.fromEntries(
      ((docs.find((d) => d.kind === kind) as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }).rules).map(
        (r) => [`${r.apiGroups[0] || 'core'}/${r.resources[0]}`, [...r.verbs].sort()],
      ),
    );
  assert.deepEqual(rules('ClusterRole'), {
    'etcdbackup.io/etcdbackups': ['get', 'list', 'update', 'watch'],
    'etcdbackup.io/etcdbackups/status': ['patch'],
    'etcdbackup.io/etcdbackups/finalizers': ['update'],
    // Referenced Secrets only: get on reconcile, a watch per Secret (secret-watches.ts); never a list.
    'core/secrets': ['get', 'watch'],
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

test('config/namespaced: the manager rules as a Role in its namespace, and the operator watches only that namespace', { skip: !hasKubectl && 'kubectl not installed' }, () => {
  const docs = kustomize('namespaced');
  const kinds = docs.map((d) => d.kind);
  assert.ok(!kinds.includes('ClusterRole') && !kinds.includes('ClusterRoleBinding'), `no cluster-wide rights: ${kinds.join(', ')}`);
  type Rbac = Doc & { metadata: { namespace?: string }; rules: unknown[]; roleRef: { kind: string; name: string } };
  const role = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'etcd-backup-manager-role') as Rbac | undefined;
  const clusterRole = kustomize('default').find((d) => d.kind === 'ClusterRole') as Rbac;
  assert.deepEqual(role?.rules, clusterRole.rules);
  const binding = docs.find((d) => d.kind === 'RoleBinding' && (d as Rbac).roleRef.name === 'etcd-backup-manager-role') as Rbac | undefined;
  assert.equal(binding?.roleRef.kind, 'Role');
  assert.equal(binding?.metadata.namespace, role?.metadata.namespace);
  const deployment = docs.find((d) => d.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
  assert.deepEqual(deployment.spec.template.spec.containers[0]!.args.slice(-2), ['--namespace', '$(POD_NAMESPACE)']);
});
