import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { freePort } from '../../src/etcd/local-etcd.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { runCli, startCli } from '../helpers/cli.js';
import { writeMixedWorkload } from '../helpers/workload.js';

let etcd: TestEtcd;
let work: string;
let storeUrl: string;

/** Every failure must be a clear line, never a stack trace. */
function assertNoStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /\n\s+at .+\(.+:\d+:\d+\)/);
}

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'cli-test-'));
  storeUrl = `file://${join(work, 'store')}`;
  await writeMixedWorkload(etcd.client(), 'cli/', 300);
});

after(async () => {
  await etcd?.stop();
  await rm(work, { recursive: true, force: true });
});

test('snapshot, list and restore through the CLI', async () => {
  const snap = await runCli(['snapshot', '--endpoints', etcd.clientUrl, '--store', storeUrl]);
  assert.equal(snap.code, 0, snap.stderr);
  assert.match(snap.stdout, /^snapshot file:\/\/.+\/full\/\d{20}-\d+\.db\.zst revision=\d+ size=\d+ sha256=[0-9a-f]{64}$/m);

  const list = await runCli(['list', '--store', storeUrl, '--output', 'json']);
  assert.equal(list.code, 0, list.stderr);
  const entries = JSON.parse(list.stdout) as Array<{ kind: string; revision: number }>;
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.kind, 'full');

  const table = await runCli(['list', '--store', storeUrl]);
  assert.match(table.stdout, /^KIND\s+REVISION\s+BYTES\s+TIME\s+OBJECT$/m);

  const dataDir = join(work, 'restored');
  const restore = await runCli(['restore', '--store', storeUrl, '--data-dir', dataDir]);
  assert.equal(restore.code, 0, restore.stderr);
  assert.match(restore.stdout, new RegExp(`revision ${entries[0]!.revision}`));
  assert.ok((await readdir(dataDir)).includes('member'));
});

const badInputs: Array<{ name: string; args: () => Promise<string[]>; code: number; message: RegExp }> = [
  {
    name: 'unreachable etcd names the endpoint',
    args: async () => ['snapshot', '--endpoints', `http://127.0.0.1:${await freePort()}`, '--store', storeUrl, '--dial-timeout', '3'],
    code: 1,
    message: /^etcd-backup: error: cannot reach etcd at http:\/\/127\.0\.0\.1:\d+/,
  },
  {
    name: 'invalid YAML names file and line',
    args: async () => {
      const file = join(work, 'broken.yaml');
      await writeFile(file, 'apiVersion: etcdbackup.io/v1alpha1\nkind: EtcdBackup\nspec: [unclosed\n');
      return ['run', '-f', file];
    },
    code: 2,
    message: /broken\.yaml:\d+:\d+: invalid YAML/,
  },
  {
    name: 'invalid spec lists every field problem',
    args: async () => {
      const file = join(work, 'invalid.yaml');
      await writeFile(
        file,
        [
          'apiVersion: etcdbackup.io/v1alpha1',
          'kind: EtcdBackup',
          'metadata: { name: bad }',
          'spec:',
          '  etcd: { endpoints: ["http://127.0.0.1:2379"] }',
          '  store: { local: { path: /tmp/x }, s3: { bucket: abc } }',
          '  fullSnapshot: { schedule: "*/61 * * * *" }',
          '  deltaSnapshot: { chunkParallelism: 0 }',
        ].join('\n'),
      );
      return ['run', '-f', file];
    },
    code: 2,
    message:
      /invalid EtcdBackup \(3 problems\):\n {2}- spec\.deltaSnapshot\.chunkParallelism: must be >= 1\n {2}- spec\.store: exactly one of s3 or local must be set \(found s3 and local\)\n {2}- spec\.fullSnapshot\.schedule: invalid cron expression "\*\/61 \* \* \* \*"/,
  },
  {
    name: 'unwritable store path',
    args: async () => {
      const file = join(work, 'a-file');
      await writeFile(file, '');
      return ['snapshot', '--endpoints', etcd.clientUrl, '--store', `file://${file}/store`];
    },
    code: 1,
    message: /^etcd-backup: error: cannot write full\/\S+ in store file:\/\/.+\/a-file\/store: a path component is not a directory$/m,
  },
  {
    name: 'existing data dir',
    args: async () => {
      const dir = join(work, 'occupied');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'x'), 'x');
      return ['restore', '--store', storeUrl, '--data-dir', dir];
    },
    code: 1,
    message: /data dir .+\/occupied is not empty; refusing to overwrite it/,
  },
  {
    name: 'unknown store scheme',
    args: async () => ['list', '--store', 'ftp://x/y'],
    code: 2,
    message: /unsupported store URL "ftp:\/\/x\/y"/,
  },
  {
    name: 'operator memory limit that is not a quantity',
    args: async () => ['operator', '--memory-limit', 'lots'],
    code: 2,
    message: /^etcd-backup: --memory-limit must be a memory quantity such as 2Gi or 512Mi$/m,
  },
  {
    name: 'unknown runner model',
    args: async () => ['operator', '--runner-model', 'fiber'],
    code: 2,
    message: /option '--runner-model <model>' argument 'fiber' is invalid\. Allowed choices are process, thread, inline/,
  },
  {
    name: 'missing required option',
    args: async () => ['snapshot', '--store', storeUrl],
    code: 2,
    message: /required option '--endpoints <urls>' not specified/,
  },
];

for (const bad of badInputs) {
  test(`bad input: ${bad.name}`, async () => {
    const result = await runCli(await bad.args());
    assert.equal(result.code, bad.code, result.stderr);
    assert.match(result.stderr, bad.message);
    assertNoStackTrace(result.stderr);
  });
}

test('bad input: corrupted snapshot on restore names the sha256 mismatch', async () => {
  const url = `file://${join(work, 'corrupt-store')}`;
  assert.equal((await runCli(['snapshot', '--endpoints', etcd.clientUrl, '--store', url, '--compression', 'none'])).code, 0);
  const [name] = await readdir(join(work, 'corrupt-store', 'full')).then((f) => f.filter((n) => n.endsWith('.db')));
  await writeFile(join(work, 'corrupt-store', 'full', name!), 'garbage');
  const result = await runCli(['restore', '--store', url, '--data-dir', join(work, 'never')]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`sha256 mismatch for full/${name!.replace(/\./g, '\\.')}: recorded [0-9a-f]{64}, content has [0-9a-f]{64}`));
  assertNoStackTrace(result.stderr);
});

test('run -f takes a full snapshot at start and stops cleanly on SIGTERM', async () => {
  const store = join(work, 'run-store');
  const file = join(work, 'backup.yaml');
  await writeFile(
    file,
    [
      'apiVersion: etcdbackup.io/v1alpha1',
      'kind: EtcdBackup',
      'metadata: { name: cli-run }',
      'spec:',
      `  etcd: { endpoints: ["${etcd.clientUrl}"] }`,
      `  store: { local: { path: ${store} } }`,
      '  fullSnapshot: { schedule: "0 0 1 1 *" }',
      '  deltaSnapshot: { period: "0" }',
    ].join('\n'),
  );
  const child = startCli(['run', '-f', file]);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!/Took full snapshot/.test(stderr) && Date.now() < deadline) await sleep(100);
    assert.match(stderr, /"message":"Took full snapshot"/);
    assert.match(stderr, /"etcdBackup":"cli-run"/);
    const files = await readdir(join(store, 'full'));
    assert.equal(files.filter((f) => f.endsWith('.db.zst')).length, 1);
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.match(stderr, /"message":"Stopping on signal"/);
  } finally {
    child.kill('SIGKILL');
  }
});
