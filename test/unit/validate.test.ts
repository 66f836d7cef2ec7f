import assert from 'node:assert/strict';
import { deltaParallelismFor, minimumDeltaBudget } from '../../src/budget/budget-fit.js';
import { test } from 'node:test';
import {
  cronProblem,
  validateEtcdBackup,
  type ValidationResult,
} from '../../src/api/validate.js';
import { specSchema } from '../../src/api/v1alpha1/schema.js';

const Mi = 2 ** 20;

interface Doc {
  apiVersion?: unknown;
  kind?: unknown;
  metadata: { name: string };
  spec: Record<string, unknown> & { etcd: { endpoints: unknown[] }; store: Record<string, unknown> };
}

/** The smallest EtcdBackup that validates: everything else comes from schema defaults. */
function minimal(store: Record<string, unknown> = { local: { path: '/var/backups' } }): Doc {
  return {
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'main' },
    spec: { etcd: { endpoints: ['http://127.0.0.1:2379'] }, store },
  };
}

function problemsOf(result: ValidationResult): string[] {
  assert.equal(result.ok, false, 'expected the document to be rejected');
  return result.ok ? [] : result.problems;
}

function okOf(result: ValidationResult): Extract<ValidationResult, { ok: true }> {
  if (!result.ok) assert.fail(`expected a valid document, got ${JSON.stringify(result.problems)}`);
  return result;
}

// Defaults are read from the schema so that this test fails if the schema and the expected
// literals drift apart, in either direction.
const props = specSchema.properties;
const expectedDefaults = {
  fullSnapshot: {
    schedule: props.fullSnapshot.properties.schedule.default,
    compression: props.fullSnapshot.properties.compression.default,
    timeout: props.fullSnapshot.properties.timeout.default,
    maxDeltaRevisions: props.fullSnapshot.properties.maxDeltaRevisions.default,
  },
  deltaSnapshot: {
    period: props.deltaSnapshot.properties.period.default,
    chunkRevisions: props.deltaSnapshot.properties.chunkRevisions.default,
    chunkParallelism: props.deltaSnapshot.properties.chunkParallelism.default,
  },
  memory: { budget: props.memory.properties.budget.default },
  retention: {
    policy: props.retention.properties.policy.default,
    maxFullSnapshots: props.retention.properties.maxFullSnapshots.default,
  },
  suspend: props.suspend.default,
  runner: props.runner.default,
  deletionPolicy: props.deletionPolicy.default,
};

test('schema defaults are the documented values', () => {
  assert.deepEqual(expectedDefaults, {
    fullSnapshot: { schedule: '0 */1 * * *', compression: 'zstd', timeout: '15m', maxDeltaRevisions: 1_000_000 },
    deltaSnapshot: { period: '20s', chunkRevisions: 1000, chunkParallelism: 4 },
    memory: { budget: '128Mi' },
    retention: { policy: 'LimitBased', maxFullSnapshots: 7 },
    suspend: false,
    runner: 'operator',
    deletionPolicy: 'Retain',
  });
});

test('a minimal local EtcdBackup gets every default and resolved units', () => {
  const input = minimal();
  const before = structuredClone(input);
  const result = okOf(validateEtcdBackup(input));
  assert.deepEqual(result.backup, {
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'main' },
    spec: {
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      store: { local: { path: '/var/backups' } },
      ...expectedDefaults,
    },
  });
  assert.equal(result.resolved.spec, result.backup.spec);
  assert.equal(result.resolved.budgetBytes, 128 * Mi);
  assert.equal(result.resolved.fullSnapshotTimeoutMs, 15 * 60_000);
  assert.equal(result.resolved.deltaPeriodMs, 20_000);
  assert.equal(result.resolved.maxDeltaRevisions, 1_000_000);
  // Defaulting works on a copy: the caller's document is untouched.
  assert.deepEqual(input, before);
});

test('a minimal s3 EtcdBackup gets the s3 defaults', () => {
  const result = okOf(validateEtcdBackup(minimal({ s3: { bucket: 'backups' } })));
  const s3 = props.store.properties.s3.properties;
  assert.deepEqual(result.backup.spec.store, {
    s3: {
      bucket: 'backups',
      prefix: s3.prefix.default,
      region: s3.region.default,
      endpoint: s3.endpoint.default,
      forcePathStyle: s3.forcePathStyle.default,
    },
  });
  assert.deepEqual(result.backup.spec.store.s3, {
    bucket: 'backups',
    prefix: '',
    region: 'us-east-1',
    endpoint: '',
    forcePathStyle: false,
  });
});

const validCases: Array<{ name: string; mutate: (d: Doc) => void; check: (r: Extract<ValidationResult, { ok: true }>) => void }> = [
  {
    name: 'budget as an integer number of bytes',
    mutate: (d) => (d.spec.memory = { budget: 64 * Mi }),
    check: (r) => assert.equal(r.resolved.budgetBytes, 64 * Mi),
  },
  {
    name: 'period 0 disables deltas, so a tiny budget is fine',
    mutate: (d) => {
      d.spec.deltaSnapshot = { period: '0' };
      d.spec.memory = { budget: '1Mi' };
    },
    check: (r) => {
      assert.equal(r.resolved.deltaPeriodMs, 0);
      assert.equal(r.resolved.budgetBytes, Mi);
    },
  },
  {
    name: 'budget exactly the minimum for the parallelism',
    mutate: (d) => {
      d.spec.deltaSnapshot = { chunkParallelism: 8 };
      d.spec.memory = { budget: '56Mi' };
    },
    check: (r) => assert.equal(r.resolved.budgetBytes, 56 * Mi),
  },
  {
    name: 'explicit values are kept over defaults',
    mutate: (d) => {
      d.spec.fullSnapshot = { schedule: '@daily', compression: 'none', timeout: '1h' };
      d.spec.retention = { maxFullSnapshots: 3 };
    },
    check: (r) => {
      assert.deepEqual(r.backup.spec.fullSnapshot, { schedule: '@daily', compression: 'none', timeout: '1h', maxDeltaRevisions: 1_000_000 });
      assert.deepEqual(r.backup.spec.retention, { maxFullSnapshots: 3, policy: 'LimitBased' });
      assert.equal(r.resolved.fullSnapshotTimeoutMs, 3_600_000);
    },
  },
  {
    // maxFullSnapshots keeps its default; Exponential ignores it (src/store/retention.ts).
    name: 'Exponential retention',
    mutate: (d) => (d.spec.retention = { policy: 'Exponential' }),
    check: (r) => assert.deepEqual(r.backup.spec.retention, { policy: 'Exponential', maxFullSnapshots: 7 }),
  },
  {
    name: 'maxDeltaRevisions is kept',
    mutate: (d) => (d.spec.fullSnapshot = { maxDeltaRevisions: 50 }),
    check: (r) => {
      assert.equal(r.backup.spec.fullSnapshot.maxDeltaRevisions, 50);
      assert.equal(r.resolved.maxDeltaRevisions, 50);
    },
  },
  {
    name: 'maxDeltaRevisions 0 means the default',
    mutate: (d) => (d.spec.fullSnapshot = { maxDeltaRevisions: 0 }),
    check: (r) => assert.equal(r.resolved.maxDeltaRevisions, 1_000_000),
  },
  {
    name: 'verification schedule is kept and has no default',
    mutate: (d) => (d.spec.verification = { schedule: '30 3 * * *' }),
    check: (r) => assert.deepEqual(r.backup.spec.verification, { schedule: '30 3 * * *' }),
  },
  {
    name: 'no verification unless asked for',
    mutate: () => undefined,
    check: (r) => assert.equal(r.backup.spec.verification, undefined, 'verification must stay absent'),
  },
  {
    name: 'https endpoints and an s3 endpoint URL',
    mutate: (d) => {
      d.spec.etcd.endpoints = ['https://etcd-0:2379', 'http://etcd-1:2379'];
      d.spec.store = { s3: { bucket: 'backups', endpoint: 'http://minio:9000', forcePathStyle: true } };
    },
    check: (r) => assert.equal(r.backup.spec.store.s3?.endpoint, 'http://minio:9000'),
  },
  {
    name: 'runner pod with an s3 store, an image and a nodeSelector',
    mutate: (d) => {
      d.spec.store = { s3: { bucket: 'backups' } };
      d.spec.runner = 'pod';
      d.spec.pod = { image: 'registry.example/etcd-backup:1.0', nodeSelector: { 'topology.kubernetes.io/zone': 'a' } };
    },
    check: (r) => {
      assert.equal(r.backup.spec.runner, 'pod');
      assert.deepEqual(r.backup.spec.pod, { image: 'registry.example/etcd-backup:1.0', nodeSelector: { 'topology.kubernetes.io/zone': 'a' } });
    },
  },
];

for (const c of validCases) {
  test(`valid: ${c.name}`, () => {
    const doc = minimal();
    c.mutate(doc);
    c.check(okOf(validateEtcdBackup(doc)));
  });
}

const badCases: Array<{ name: string; mutate: (d: Doc) => void; problems: string[]; todo?: string }> = [
  {
    name: 'cron step out of range',
    mutate: (d) => (d.spec.fullSnapshot = { schedule: '*/61 * * * *' }),
    problems: ['spec.fullSnapshot.schedule: invalid cron expression "*/61 * * * *"'],
  },
  {
    name: 'cron with six fields',
    mutate: (d) => (d.spec.fullSnapshot = { schedule: '0 0 * * * *' }),
    problems: [
      'spec.fullSnapshot.schedule: invalid cron expression "0 0 * * * *": expected 5 fields (minute hour day-of-month month day-of-week)',
    ],
  },
  {
    name: 'cron that never fires',
    mutate: (d) => (d.spec.fullSnapshot = { schedule: '0 0 31 2 *' }),
    problems: ['spec.fullSnapshot.schedule: cron expression "0 0 31 2 *" never fires'],
  },
  {
    name: 'verification cron step out of range',
    mutate: (d) => (d.spec.verification = { schedule: '*/61 * * * *' }),
    problems: ['spec.verification.schedule: invalid cron expression "*/61 * * * *"'],
  },
  {
    name: 'verification cron with six fields',
    mutate: (d) => (d.spec.verification = { schedule: '0 30 3 * * *' }),
    problems: [
      'spec.verification.schedule: invalid cron expression "0 30 3 * * *": expected 5 fields (minute hour day-of-month month day-of-week)',
    ],
  },
  {
    name: 'verification cron that never fires',
    mutate: (d) => (d.spec.verification = { schedule: '0 0 30 2 *' }),
    problems: ['spec.verification.schedule: cron expression "0 0 30 2 *" never fires'],
  },
  {
    name: 'verification without a schedule',
    mutate: (d) => (d.spec.verification = {}),
    problems: ['spec.verification.schedule: required'],
  },
  {
    name: 'verification schedule of the wrong type',
    mutate: (d) => (d.spec.verification = { schedule: 5 }),
    problems: ['spec.verification.schedule: must be string'],
  },
  {
    name: 'both s3 and local',
    mutate: (d) => (d.spec.store = { s3: { bucket: 'backups' }, local: { path: '/b' } }),
    problems: ['spec.store: exactly one of s3 or local must be set (found s3 and local)'],
  },
  {
    name: 'neither s3 nor local',
    mutate: (d) => (d.spec.store = {}),
    problems: ['spec.store: exactly one of s3 or local must be set (found none)'],
  },
  {
    name: 'negative chunkParallelism',
    mutate: (d) => (d.spec.deltaSnapshot = { chunkParallelism: -1 }),
    problems: ['spec.deltaSnapshot.chunkParallelism: must be >= 1'],
  },
  {
    name: 'zero chunkParallelism',
    mutate: (d) => (d.spec.deltaSnapshot = { chunkParallelism: 0 }),
    problems: ['spec.deltaSnapshot.chunkParallelism: must be >= 1'],
  },
  {
    name: 'chunkParallelism just over the maximum, with a budget that would hold it',
    mutate: (d) => {
      d.spec.deltaSnapshot = { chunkParallelism: 65 };
      d.spec.memory = { budget: '1Gi' };
    },
    problems: ['spec.deltaSnapshot.chunkParallelism: must be <= 64'],
  },
  {
    // The budget line is computed from the out-of-range value too; both are reported.
    name: 'huge chunkParallelism',
    mutate: (d) => (d.spec.deltaSnapshot = { chunkParallelism: 1000 }),
    problems: [
      // Only the range error: a budget line would suggest a bigger budget could fix it.
      'spec.deltaSnapshot.chunkParallelism: must be <= 64',
    ],
  },
  {
    name: 'budget too small for the default parallelism',
    mutate: (d) => (d.spec.memory = { budget: '8Mi' }),
    problems: [
      'spec.memory.budget: 8Mi cannot hold 4 maximal revisions in parallel; the minimum for chunkParallelism 4 is 28Mi',
    ],
  },
  {
    name: 'budget one MiB short for parallelism 8',
    mutate: (d) => {
      d.spec.deltaSnapshot = { chunkParallelism: 8 };
      d.spec.memory = { budget: '55Mi' };
    },
    problems: [
      'spec.memory.budget: 55Mi cannot hold 8 maximal revisions in parallel; the minimum for chunkParallelism 8 is 56Mi',
    ],
  },
  {
    name: 'S3 needs room for its part buffers beside the fetches',
    mutate: (d) => {
      d.spec.store = { s3: { bucket: 'backups' } };
      d.spec.memory = { budget: '64Mi' };
    },
    problems: [
      'spec.memory.budget: 64Mi cannot hold 4 maximal revisions in parallel with S3 upload buffers; the minimum for chunkParallelism 4 is 125Mi',
    ],
  },
  {
    name: 'budget not a quantity',
    mutate: (d) => (d.spec.memory = { budget: 'abc' }),
    problems: ['spec.memory.budget: "abc" is not a positive quantity (e.g. 128Mi)'],
  },
  {
    name: 'budget zero',
    mutate: (d) => (d.spec.memory = { budget: 0 }),
    problems: ['spec.memory.budget: 0 is not a positive quantity (e.g. 128Mi)'],
  },
  {
    name: 'budget negative',
    mutate: (d) => (d.spec.memory = { budget: '-1Gi' }),
    problems: ['spec.memory.budget: "-1Gi" is not a positive quantity (e.g. 128Mi)'],
  },
  {
    name: 'budget of the wrong type',
    mutate: (d) => (d.spec.memory = { budget: true }),
    problems: ['spec.memory.budget: must be an integer or a string'],
  },
  {
    // 8Ei is 2^63 bytes: not a safe integer, so `new MemoryBudget(budgetBytes)` in the supervisor
    // throws RangeError after the spec was accepted.
    name: 'budget beyond Number.MAX_SAFE_INTEGER',
    mutate: (d) => (d.spec.memory = { budget: '8Ei' }),
    problems: ['spec.memory.budget: "8Ei" is not a positive quantity (e.g. 128Mi)'],
  },
  {
    name: 'period not a duration',
    mutate: (d) => (d.spec.deltaSnapshot = { period: 'x' }),
    problems: ['spec.deltaSnapshot.period: "x" is not a duration (e.g. 20s, or 0 to disable)'],
  },
  {
    name: 'period under a second',
    mutate: (d) => (d.spec.deltaSnapshot = { period: '500ms' }),
    problems: ['spec.deltaSnapshot.period: must be at least 1s (or 0 to disable deltas)'],
  },
  {
    name: 'negative maxDeltaRevisions',
    mutate: (d) => (d.spec.fullSnapshot = { maxDeltaRevisions: -1 }),
    problems: ['spec.fullSnapshot.maxDeltaRevisions: must be >= 0'],
  },
  {
    name: 'fractional maxDeltaRevisions',
    mutate: (d) => (d.spec.fullSnapshot = { maxDeltaRevisions: 1.5 }),
    problems: ['spec.fullSnapshot.maxDeltaRevisions: must be integer'],
  },
  {
    name: 'timeout zero',
    mutate: (d) => (d.spec.fullSnapshot = { timeout: '0' }),
    problems: ['spec.fullSnapshot.timeout: "0" is not a positive duration (e.g. 15m)'],
  },
  {
    name: 'relative local path',
    mutate: (d) => (d.spec.store = { local: { path: 'backups' } }),
    problems: ['spec.store.local.path: must be an absolute path'],
  },
  {
    name: 'etcd endpoints that are not http(s) URLs',
    mutate: (d) => (d.spec.etcd.endpoints = ['localhost:2379', 'http://etcd:2379', 'ftp://etcd']),
    problems: [
      'spec.etcd.endpoints[0]: "localhost:2379" is not an http:// or https:// URL',
      'spec.etcd.endpoints[2]: "ftp://etcd" is not an http:// or https:// URL',
    ],
  },
  {
    name: 'no etcd endpoints',
    mutate: (d) => (d.spec.etcd.endpoints = []),
    problems: ['spec.etcd.endpoints: must NOT have fewer than 1 items'],
  },
  {
    name: 's3 endpoint not a URL',
    mutate: (d) => (d.spec.store = { s3: { bucket: 'backups', endpoint: 'minio:9000' } }),
    problems: ['spec.store.s3.endpoint: "minio:9000" is not an http(s) URL'],
  },
  {
    name: 's3 bucket name too short',
    mutate: (d) => (d.spec.store = { s3: { bucket: 'b' } }),
    problems: ['spec.store.s3.bucket: must NOT have fewer than 3 characters'],
  },
  {
    name: 'wrong apiVersion and kind',
    mutate: (d) => {
      d.apiVersion = 'v1';
      d.kind = 'ConfigMap';
    },
    problems: ['apiVersion: must be etcdbackup.io/v1alpha1', 'kind: must be EtcdBackup'],
  },
  {
    name: 'missing apiVersion and kind',
    mutate: (d) => {
      delete d.apiVersion;
      delete d.kind;
    },
    problems: ['apiVersion: must be etcdbackup.io/v1alpha1', 'kind: must be EtcdBackup'],
  },
  {
    name: 'unknown retention policy',
    mutate: (d) => (d.spec.retention = { policy: 'Forever' }),
    problems: ['spec.retention.policy: must be one of LimitBased, Exponential'],
  },
  {
    name: 'chunkRevisions of the wrong type',
    mutate: (d) => (d.spec.deltaSnapshot = { chunkRevisions: 'ten' }),
    problems: ['spec.deltaSnapshot.chunkRevisions: must be integer'],
  },
  {
    name: 'suspend of the wrong type',
    mutate: (d) => (d.spec.suspend = 'yes'),
    problems: ['spec.suspend: must be boolean'],
  },
  {
    name: 'unknown runner',
    mutate: (d) => (d.spec.runner = 'job'),
    problems: ['spec.runner: must be one of operator, pod'],
  },
  {
    name: 'runner pod with a local store',
    mutate: (d) => (d.spec.runner = 'pod'),
    problems: ["spec.runner: pod needs an s3 store (a local path would be on the worker pod's filesystem)"],
  },
  {
    name: 'pod nodeSelector values must be strings',
    mutate: (d) => {
      d.spec.store = { s3: { bucket: 'backups' } };
      d.spec.runner = 'pod';
      d.spec.pod = { nodeSelector: { zone: 3 } };
    },
    problems: ['spec.pod.nodeSelector.zone: must be string'],
  },
  {
    name: 'unknown compression',
    mutate: (d) => (d.spec.fullSnapshot = { compression: 'lz4' }),
    problems: ['spec.fullSnapshot.compression: must be one of gzip, zstd, none'],
  },
  {
    name: 'encryption without a key reference',
    mutate: (d) => (d.spec.encryption = {}),
    problems: ['spec.encryption.keySecretRef: required'],
  },
  {
    name: 'missing etcd',
    mutate: (d) => delete (d.spec as Partial<Doc['spec']>).etcd,
    problems: ['spec.etcd: required'],
  },
  {
    name: 'several problems are reported together, in one result',
    mutate: (d) => {
      d.kind = 'Backup';
      d.spec.store = { local: { path: 'relative' } };
      d.spec.fullSnapshot = { schedule: '*/61 * * * *' };
      d.spec.deltaSnapshot = { period: 'x', chunkRevisions: 'ten' };
      d.spec.memory = { budget: 'abc' };
    },
    problems: [
      'kind: must be EtcdBackup',
      'spec.deltaSnapshot.chunkRevisions: must be integer',
      'spec.store.local.path: must be an absolute path',
      'spec.fullSnapshot.schedule: invalid cron expression "*/61 * * * *"',
      'spec.deltaSnapshot.period: "x" is not a duration (e.g. 20s, or 0 to disable)',
      'spec.memory.budget: "abc" is not a positive quantity (e.g. 128Mi)',
    ],
  },
];

for (const c of badCases) {
  test(`invalid: ${c.name}`, { todo: c.todo }, () => {
    const doc = minimal();
    c.mutate(doc);
    assert.deepEqual(problemsOf(validateEtcdBackup(doc)), c.problems);
  });
}

const notObjects: Array<{ name: string; input: unknown }> = [
  { name: 'null', input: null },
  { name: 'undefined', input: undefined },
  { name: 'an array', input: [] },
  { name: 'a string', input: 'kind: EtcdBackup' },
  { name: 'a number', input: 5 },
];

for (const c of notObjects) {
  test(`invalid: document is ${c.name}`, () => {
    assert.deepEqual(problemsOf(validateEtcdBackup(c.input)), ['document: expected an EtcdBackup object']);
  });
}

test('invalid: missing spec lists both the missing spec and the missing store', () => {
  assert.deepEqual(problemsOf(validateEtcdBackup({ apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup' })), [
    'spec: required',
    'spec.store: exactly one of s3 or local must be set (found none)',
  ]);
});

const FIELDS = 'expected 5 fields (minute hour day-of-month month day-of-week)';
const cronCases: Array<{ expression: string; want: string | undefined }> = [
  { expression: '0 */1 * * *', want: undefined },
  { expression: '*/15 * * * *', want: undefined },
  { expression: '30 2 * * 1-5', want: undefined },
  { expression: '@hourly', want: undefined },
  { expression: '@daily', want: undefined },
  { expression: '  0 * * * *  ', want: undefined },
  { expression: '*/61 * * * *', want: 'invalid cron expression "*/61 * * * *"' },
  { expression: '60 * * * *', want: 'invalid cron expression "60 * * * *"' },
  { expression: '0 24 * * *', want: 'invalid cron expression "0 24 * * *"' },
  { expression: 'a b c d e', want: 'invalid cron expression "a b c d e"' },
  { expression: '@bogus', want: 'invalid cron expression "@bogus"' },
  { expression: '', want: `invalid cron expression "": ${FIELDS}` },
  { expression: '* * * *', want: `invalid cron expression "* * * *": ${FIELDS}` },
  // Six fields would be read as seconds-first by croner; we accept only the Kubernetes five.
  { expression: '0 0 * * * *', want: `invalid cron expression "0 0 * * * *": ${FIELDS}` },
  { expression: '0 0 31 2 *', want: 'cron expression "0 0 31 2 *" never fires' },
];

for (const c of cronCases) {
  test(`cronProblem(${JSON.stringify(c.expression)})`, () => {
    assert.equal(cronProblem(c.expression), c.want);
  });
}

const minimumCases: Array<{ store: 'local' | 's3'; parallelism: number; want: number }> = [
  // Per fetch: 4.5 MiB watch transport + 0.5 MiB encoder + 2 MiB events (budget/fetch-budget.ts).
  { store: 'local', parallelism: 1, want: 7 * Mi },
  { store: 'local', parallelism: 4, want: 28 * Mi },
  { store: 'local', parallelism: 8, want: 56 * Mi },
  { store: 'local', parallelism: 64, want: 448 * Mi },
  // S3 adds three part buffers per upload (part size grows with the budget, so not linear).
  { store: 's3', parallelism: 1, want: 23 * Mi },
  { store: 's3', parallelism: 4, want: 125 * Mi },
];

for (const c of minimumCases) {
  test(`minimumDeltaBudget(${c.store}, ${c.parallelism}) = ${c.want / Mi}Mi`, () => {
    const minimum = minimumDeltaBudget(c.store, c.parallelism);
    assert.equal(minimum, c.want);
    assert.equal(deltaParallelismFor(c.store, minimum, c.parallelism), c.parallelism, 'the minimum runs every fetch');
    assert.ok(deltaParallelismFor(c.store, minimum - Mi, c.parallelism) < c.parallelism, 'one MiB less does not');
  });
}

// Encrypted deltas: each fetch's window also holds an encrypting stream (ENCRYPT_STREAM_BYTES, 256 KiB),
// so the minimum moves up by whole MiB where the unencrypted minimum was exact.
const encryptedMinimumCases: Array<{ store: 'local' | 's3'; parallelism: number; want: number }> = [
  { store: 'local', parallelism: 1, want: 8 * Mi },
  { store: 'local', parallelism: 4, want: 30 * Mi }, // 4 x (7 MiB + 256 KiB + 4 x 16-byte tags)
  { store: 's3', parallelism: 4, want: 126 * Mi },
];

for (const c of encryptedMinimumCases) {
  test(`minimumDeltaBudget(${c.store}, ${c.parallelism}, encrypted) = ${c.want / Mi}Mi`, () => {
    const minimum = minimumDeltaBudget(c.store, c.parallelism, true);
    assert.equal(minimum, c.want);
    assert.equal(deltaParallelismFor(c.store, minimum, c.parallelism, true), c.parallelism, 'the minimum runs every fetch');
    assert.ok(deltaParallelismFor(c.store, minimum - Mi, c.parallelism, true) < c.parallelism, 'one MiB less does not');
  });
}

test('an encrypted spec needs budget for its encrypting streams: 28Mi holds 4 plain fetches, not 4 encrypted ones', () => {
  const doc = minimal();
  doc.spec.memory = { budget: '28Mi' };
  doc.spec.deltaSnapshot = { chunkParallelism: 4 };
  okOf(validateEtcdBackup(doc));
  doc.spec.encryption = { keySecretRef: { name: 'backup-key' } };
  assert.deepEqual(problemsOf(validateEtcdBackup(doc)), [
    'spec.memory.budget: 28Mi cannot hold 4 maximal revisions in parallel with encryption; the minimum for chunkParallelism 4 is 30Mi',
  ]);
});
