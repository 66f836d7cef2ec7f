import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { validateEtcdBackup } from '../../src/api/validate.js';
import type { EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { computeStatus, Reason, type StatusInputs } from '../../src/controller/conditions.js';
import {
  ANNOTATION_APPLIED_HASH,
  ANNOTATION_CONFIG_HASH,
  buildPodRunnerObjects,
  CONFIG_DIR,
  CONFIG_FILE,
  controlledBy,
  deploymentAvailability,
  LABEL_INSTANCE,
  SECRETS_DIR,
  WORKER_BASE_MEMORY_MIB,
  workerName,
  type PodRunnerInput,
} from '../../src/controller/pod-runner.js';
import { observeStore } from '../../src/controller/store-status.js';
import { deltaKey, fullSnapshotKey } from '../../src/archive/naming.js';

const Mi = 2 ** 20;
const UID = '0b5c0d3e-1111-4222-8333-444455556666';

/** A validated pod-runner EtcdBackup as the API would hold it (defaults applied, uid set). */
function backup(spec: Record<string, unknown> = {}): EtcdBackup {
  const result = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'main', namespace: 'etcd', uid: UID, generation: 3, resourceVersion: '42' },
    spec: {
      etcd: { endpoints: ['https://etcd-0.etcd:2379'], tlsSecretRef: { name: 'etcd-tls' } },
      store: { s3: { bucket: 'backups', prefix: 'prod/main', credentialsSecretRef: { name: 's3-creds' } } },
      memory: { budget: '128Mi' },
      encryption: { keySecretRef: { name: 'backup-key' } },
      runner: 'pod',
      ...spec,
    },
  });
  if (!result.ok) assert.fail(result.problems.join('; '));
  return result.backup;
}

function input(overrides: Partial<PodRunnerInput> = {}): PodRunnerInput {
  return { backup: backup(), budgetBytes: 128 * Mi, image: 'registry.example/etcd-backup:1.2.3', secretVersions: { 's3-creds': '7' }, ...overrides };
}

test('the Deployment runs one worker that Kubernetes may schedule anywhere, owned by the EtcdBackup', () => {
  const { deployment, configMap } = buildPodRunnerObjects(input());
  assert.equal(deployment.metadata?.name, 'etcd-backup-main');
  assert.equal(deployment.metadata?.namespace, 'etcd');
  for (const obj of [deployment, configMap]) {
    assert.deepEqual(obj.metadata?.ownerReferences, [
      { apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup', name: 'main', uid: UID, controller: true, blockOwnerDeletion: true },
    ]);
    assert.ok(controlledBy(obj, UID));
    assert.ok(!controlledBy(obj, 'another-uid'));
  }
  const spec = deployment.spec!;
  assert.equal(spec.replicas, 1);
  assert.deepEqual(spec.strategy, { type: 'Recreate' }, 'two workers never write the same store');
  assert.deepEqual(spec.selector.matchLabels, { [LABEL_INSTANCE]: UID });
  for (const [k, v] of Object.entries(spec.selector.matchLabels!)) assert.equal(spec.template.metadata?.labels?.[k], v, 'the selector selects the template');
});

test('memory limit = budget + base; the heap cap leaves room outside the heap', () => {
  const container = buildPodRunnerObjects(input({ budgetBytes: 128 * Mi })).deployment.spec!.template.spec!.containers[0]!;
  assert.equal(WORKER_BASE_MEMORY_MIB, 192);
  assert.deepEqual(container.resources, { requests: { cpu: '100m', memory: '320Mi' }, limits: { memory: '320Mi' } });
  // The same heap cap an operator-hosted worker gets: budget + 128 MiB.
  assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=256' }]);
  // A budget that is not a whole number of MiB rounds up.
  const odd = buildPodRunnerObjects(input({ budgetBytes: 100 * Mi + 1 })).deployment.spec!.template.spec!.containers[0]!;
  assert.equal(odd.resources?.limits?.memory, `${101 + 192}Mi`);
});

test('non-root, read-only root filesystem, no service-account token, nothing to escalate', () => {
  const pod = buildPodRunnerObjects(input()).deployment.spec!.template.spec!;
  assert.equal(pod.automountServiceAccountToken, false);
  assert.deepEqual(pod.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(pod.containers[0]!.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  });
  assert.equal(pod.nodeSelector, undefined);
  const placed = buildPodRunnerObjects(input({ backup: backup({ pod: { nodeSelector: { zone: 'a' } } }) })).deployment;
  assert.deepEqual(placed.spec!.template.spec!.nodeSelector, { zone: 'a' });
});

test('the worker runs `run -f` on the ConfigMap with the same spec; the user\'s Secrets are mounted, not copied', () => {
  const b = backup();
  const { deployment, configMap } = buildPodRunnerObjects(input({ backup: b }));
  const container = deployment.spec!.template.spec!.containers[0]!;
  assert.equal(container.image, 'registry.example/etcd-backup:1.2.3');
  assert.deepEqual(container.args, ['run', '-f', `${CONFIG_DIR}/${CONFIG_FILE}`, '--secrets-dir', SECRETS_DIR]);

  // The file validates with the CLI's validator and holds exactly the EtcdBackup's spec.
  const file = parse(configMap.data![CONFIG_FILE]!) as unknown;
  const loaded = validateEtcdBackup(file);
  if (!loaded.ok) assert.fail(loaded.problems.join('; '));
  assert.deepEqual(loaded.backup.spec, b.spec);
  assert.deepEqual(loaded.backup.metadata, { name: 'main', namespace: 'etcd' });

  const volumes = deployment.spec!.template.spec!.volumes!;
  const mountOf = (volumeName: string) => container.volumeMounts!.find((m) => m.name === volumeName);
  assert.deepEqual(volumes.find((v) => v.configMap)?.configMap, { name: 'etcd-backup-main', defaultMode: 0o444 });
  const secretMounts = volumes
    .filter((v) => v.secret)
    .map((v) => ({ secret: v.secret!.secretName, path: mountOf(v.name)?.mountPath, readOnly: mountOf(v.name)?.readOnly }));
  // <secrets-dir>/<name>/<key> is the layout `run --secrets-dir` reads (src/cli/secrets-dir.ts).
  assert.deepEqual(secretMounts, [
    { secret: 'backup-key', path: `${SECRETS_DIR}/backup-key`, readOnly: true },
    { secret: 'etcd-tls', path: `${SECRETS_DIR}/etcd-tls`, readOnly: true },
    { secret: 's3-creds', path: `${SECRETS_DIR}/s3-creds`, readOnly: true },
  ]);
  assert.ok(!JSON.stringify(configMap).includes('secretAccessKey'), 'no Secret value in the ConfigMap');
});

test('the config hash follows the spec and the Secrets; equal input gives equal objects', () => {
  const hashes = (i: PodRunnerInput) => {
    const { deployment, configMap } = buildPodRunnerObjects(i);
    return {
      config: deployment.spec!.template.metadata!.annotations![ANNOTATION_CONFIG_HASH],
      applied: deployment.metadata!.annotations![ANNOTATION_APPLIED_HASH],
      appliedConfigMap: configMap.metadata!.annotations![ANNOTATION_APPLIED_HASH],
    };
  };
  const base = hashes(input());
  assert.deepEqual(buildPodRunnerObjects(input()), buildPodRunnerObjects(input()), 'pure: same input, same objects');
  assert.deepEqual(hashes(input({ secretVersions: { 's3-creds': '7' } })), base);

  const newSpec = hashes(input({ backup: backup({ retention: { maxFullSnapshots: 3 } }) }));
  assert.notEqual(newSpec.config, base.config, 'a spec change rolls the pod');
  assert.notEqual(newSpec.appliedConfigMap, base.appliedConfigMap, 'and rewrites the ConfigMap');
  assert.notEqual(hashes(input({ secretVersions: { 's3-creds': '8' } })).config, base.config, 'a rotated Secret rolls the pod');

  const newImage = hashes(input({ image: 'registry.example/etcd-backup:1.2.4' }));
  assert.equal(newImage.config, base.config, 'the image is in the template itself');
  assert.notEqual(newImage.applied, base.applied, 'but the Deployment is rewritten');
});

test('workerName: a DNS label, unique for long EtcdBackup names', () => {
  assert.equal(workerName('main'), 'etcd-backup-main');
  const long = workerName('a'.repeat(100));
  const other = workerName(`${'a'.repeat(99)}b`);
  assert.ok(long.length <= 63, long);
  assert.match(long, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.notEqual(long, other);
});

test('deploymentAvailability reads availableReplicas and explains a stuck rollout', () => {
  assert.deepEqual(deploymentAvailability(undefined), { available: false, message: 'The worker Deployment does not exist yet' });
  const d = buildPodRunnerObjects(input()).deployment;
  assert.equal(deploymentAvailability(d).available, false);
  assert.equal(deploymentAvailability({ ...d, status: { availableReplicas: 1 } }).available, true);
  const stuck = deploymentAvailability({
    ...d,
    status: {
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "x" has timed out progressing.' }],
    },
  });
  assert.deepEqual(stuck, { available: false, message: 'Worker Deployment etcd-backup-main has no available pod: ReplicaSet "x" has timed out progressing.' });
});

const enc = { compression: 'gzip', encrypted: false } as const;
const info = (key: string, size = 10, lastModified = new Date('2025-01-01T00:10:00Z')) => ({ key, size, lastModified });

test('observeStore: the newest full snapshot, the furthest delta and the contiguous archive end', () => {
  assert.deepEqual(observeStore([]), {});
  const t = new Date('2025-01-01T00:00:00Z');
  const objects = [
    info(fullSnapshotKey(50, t, enc), 100),
    info(fullSnapshotKey(100, new Date('2025-01-01T01:00:00Z'), enc), 200),
    info(deltaKey(51, 100, enc)),
    info(deltaKey(101, 150, enc), 10, new Date('2025-01-01T01:05:00Z')),
    // After a gap: not archived yet, but still the last delta uploaded.
    info(deltaKey(160, 170, enc), 10, new Date('2025-01-01T01:06:00Z')),
    info('full/junk.txt'),
  ];
  assert.deepEqual(observeStore(objects), {
    lastFullSnapshot: { revision: 100, time: '2025-01-01T01:00:00.000Z', object: fullSnapshotKey(100, new Date('2025-01-01T01:00:00Z'), enc), sizeBytes: 200 },
    lastDeltaSnapshot: { fromRevision: 160, toRevision: 170, time: '2025-01-01T01:06:00.000Z', object: deltaKey(160, 170, enc) },
    archivedRevision: 150,
    // The snapshot at 50 joins the window (its deltas reach 100); the gap before 160 ends it at 150.
    recoverableWindow: { firstRevision: 50, firstTime: '2025-01-01T00:00:00.000Z', lastRevision: 150, lastTime: '2025-01-01T01:05:00.000Z' },
    replayRevisions: 50,
  });
});

function podInputs(worker: StatusInputs['worker'], previous?: StatusInputs['previous']): StatusInputs {
  return {
    generation: 2,
    previous,
    now: new Date('2025-01-01T02:00:00Z'),
    specProblems: [],
    secretProblems: [],
    suspended: false,
    deltasEnabled: true,
    worker,
  };
}

test('status of a pod worker: availability and the store decide Ready; revisions come from the store', () => {
  const store = observeStore([
    info(fullSnapshotKey(100, new Date('2025-01-01T01:00:00Z'), enc), 200),
    info(deltaKey(101, 150, enc)),
  ]);
  const ready = (s: ReturnType<typeof computeStatus>) => s.conditions?.find((c) => c.type === 'Ready');
  const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

  const unavailable = computeStatus(podInputs({ phase: 'Pod', available: false, message: 'Worker Deployment x has no available pod', store }));
  assert.equal(ready(unavailable)?.reason, Reason.WorkerUnavailable);
  assert.equal(ready(unavailable)?.message, 'Worker Deployment x has no available pod');
  assert.equal(unavailable.archivedRevision, 150, 'what the store holds is reported even while the pod is down');

  const current = computeStatus(podInputs({ phase: 'Pod', available: true, message: 'Worker Deployment x has an available pod', store }));
  assert.equal(ready(current)?.status, 'True');
  assert.equal(ready(current)?.reason, Reason.BackupsCurrent);
  assert.equal(cond(current, 'FullSnapshotSucceeded')?.status, 'True');
  assert.equal(cond(current, 'DeltaSnapshotSucceeded')?.status, 'True');
  assert.deepEqual(current.lastFullSnapshot, store.lastFullSnapshot);
  assert.deepEqual(current.lastDeltaSnapshot, store.lastDeltaSnapshot);
  assert.equal(current.archivedRevision, 150);
  assert.equal(current.memory, undefined, 'no live readings from a worker the operator cannot ask');

  const first = computeStatus(podInputs({ phase: 'Pod', available: true, message: 'ok', store: {} }));
  assert.equal(ready(first)?.reason, Reason.WaitingForFirstSnapshot);

  // A store that cannot be listed: not Ready, and the last known revisions stay.
  const unreachable = computeStatus(podInputs({ phase: 'Pod', available: true, message: 'ok', storeError: 'connect ECONNREFUSED' }, current));
  assert.equal(ready(unreachable)?.reason, Reason.StoreUnreachable);
  assert.match(ready(unreachable)!.message, /ECONNREFUSED/);
  assert.equal(unreachable.archivedRevision, 150);
});
