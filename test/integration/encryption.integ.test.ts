/**
 * Encryption at rest end to end, through the CLI as a user runs it: `run -f` with the key in a
 * mounted-Secret layout writes `.enc` full snapshots and deltas from a real etcd into a local store;
 * `restore` and `verify` with --encryption-key-file rebuild the source exactly; a missing key, a
 * wrong key, a tampered object and a truncated object each give one clear line and restore nothing;
 * a key rotation (new key mid-chain) needs both keys. No form of any key appears in any output.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { HEADER_BYTES, keyId } from '../../src/crypto/encryption.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { contiguousChainEnd } from '../../src/restore/restore-plan.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys, type BackupListing } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startCli, type CliResult } from '../helpers/cli.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const KEY_A = randomBytes(32);
const KEY_B = randomBytes(32);
const WRONG = randomBytes(32);
/** A value that must never be readable in the store: compression is off, so only encryption hides it. */
const MARKER = 'PLAINTEXT-MARKER-e1b2c3';

let etcd: TestEtcd;
let work: string;
const children: ChildProcess[] = [];
/** Every byte any CLI process printed, scanned for key material at the end. */
const output: Buffer[] = [];

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'encryption-integ-'));
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function start(args: string[]): ChildProcess {
  const child = startCli(['--log-level', 'debug', ...args]);
  children.push(child);
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk));
  return child;
}

async function cli(args: string[]): Promise<CliResult> {
  const child = start(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** The CLI's own error lines (logs are JSON lines on stderr too). */
function errorLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line.startsWith('etcd-backup:'));
}

async function listing(store: LocalStore): Promise<BackupListing> {
  return classifyKeys((await store.list('')).map((o) => o.key));
}

async function archivedEnd(store: LocalStore): Promise<number> {
  const { fulls, deltas } = await listing(store);
  const full = fulls.at(-1);
  return full ? contiguousChainEnd(deltas, full.revision) : 0;
}

/** Runs `run -f` until the store holds every revision up to etcd's head, then stops it with SIGTERM. */
async function runUntilArchived(file: string, secretsDir: string, store: LocalStore, write: () => Promise<void>): Promise<number> {
  const child = start(['run', '-f', file, '--secrets-dir', secretsDir]);
  // Writes must come after the full snapshot to end up in deltas.
  const started = Date.now() + 20_000;
  while ((await listing(store)).fulls.length === 0 && Date.now() < started) await sleep(100);
  await write();
  const head = await headRevision(etcd.client());
  const deadline = Date.now() + 20_000;
  while ((await archivedEnd(store)) < head && Date.now() < deadline) await sleep(100);
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, 'run stops cleanly on SIGTERM');
  assert.equal(await archivedEnd(store), head, 'the store holds every revision up to the head');
  return head;
}

/** Checks the restored data dir is the source at `revision`: every key, value and revision field. */
async function assertRestored(dataDir: string, revision: number): Promise<void> {
  const member = await startLocalEtcd({ dataDir, logFile: `${dataDir}.log` });
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  try {
    assert.equal(await headRevision(client), revision, 'restored head revision');
    assert.deepEqual(await allKeys(client), await allKeys(etcd.client(), revision), `keyspace at revision ${revision}`);
  } finally {
    client.close();
    await member.stop();
  }
}

async function assertNothingRestored(dataDir: string): Promise<void> {
  const entries = await readdir(dataDir).catch(() => []);
  assert.deepEqual(entries, [], `nothing left in ${dataDir}`);
}

/** Rewrites a local-store object and its sidecar's size and sha256, as someone with write access to the store could. */
async function rewriteObject(storeDir: string, key: string, change: (bytes: Buffer) => Buffer): Promise<void> {
  const path = join(storeDir, key);
  const bytes = change(await readFile(path));
  await writeFile(path, bytes);
  const sidecar = JSON.parse(await readFile(`${path}.meta.json`, 'utf8')) as { size: number; metadata: Record<string, string> };
  sidecar.size = bytes.length;
  sidecar.metadata.sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFile(`${path}.meta.json`, JSON.stringify(sidecar));
}

test('encrypted backups via run -f: restore with the keys equals the source; wrong, missing or rotated keys and tampering fail clearly', { timeout: 120_000 }, async () => {
  const storeDir = join(work, 'store');
  const store = new LocalStore(storeDir);
  const secretsDir = join(work, 'secrets');
  await mkdir(join(secretsDir, 'backup-key'), { recursive: true });
  await writeFile(join(secretsDir, 'backup-key', 'key'), `${KEY_A.toString('hex')}\n`); // hex, as kubectl create secret --from-file would hold it
  const keyFiles = { a: join(work, 'a.key'), b: join(work, 'b.key'), wrong: join(work, 'wrong.key') };
  await writeFile(keyFiles.a, KEY_A); // raw bytes
  await writeFile(keyFiles.b, KEY_B.toString('base64'));
  await writeFile(keyFiles.wrong, WRONG.toString('hex'));
  const file = join(work, 'backup.yaml');
  await writeFile(
    file,
    [
      'apiVersion: etcdbackup.io/v1alpha1',
      'kind: EtcdBackup',
      'metadata: { name: encrypted }',
      'spec:',
      `  etcd: { endpoints: ["${etcd.clientUrl}"] }`,
      `  store: { local: { path: ${storeDir} } }`,
      '  fullSnapshot: { schedule: "0 0 1 1 *", compression: none }',
      '  deltaSnapshot: { period: 1s, chunkRevisions: 100, chunkParallelism: 2 }',
      '  memory: { budget: 32Mi }',
      '  encryption: { keySecretRef: { name: backup-key } }',
    ].join('\n'),
  );
  const client = etcd.client();
  await client.put('marker/full').value(MARKER);
  await writeMixedWorkload(client, 'a/', 200, 21);
  // ~320 KiB of values so the snapshot spans several 64 KiB segments.
  for (let i = 0; i < 20; i++) await client.put(`big/${i}`).value(randomBytes(8 * 1024).toString('hex'));

  // 1. Key A: a full snapshot and deltas, all encrypted.
  const headA = await runUntilArchived(file, secretsDir, store, async () => {
    await writeMixedWorkload(client, 'b/', 300, 22);
    await client.put('marker/delta').value(MARKER);
  });
  const first = await listing(store);
  assert.equal(first.fulls.length, 1, 'one full snapshot');
  assert.ok(first.deltas.length >= 2, `${first.deltas.length} delta objects`);
  for (const name of [...first.fulls, ...first.deltas]) {
    assert.ok(name.encrypted && name.key.endsWith('.enc'), `${name.key} is encrypted`);
    const bytes = await readFile(join(storeDir, name.key));
    assert.ok(!bytes.includes(MARKER), `${name.key} does not hold the plaintext`);
    const sidecar = JSON.parse(await readFile(join(storeDir, `${name.key}.meta.json`), 'utf8')) as { metadata: Record<string, string> };
    if (name.kind === 'full') assert.equal(sidecar.metadata['encryption-key-id'], keyId(KEY_A), 'the key id is recorded');
  }
  const snapshotRevision = first.fulls[0]!.revision;

  // 2. Restore to a revision inside the chain with key A: equals the source there.
  const mid = Math.floor((snapshotRevision + headA) / 2);
  const midDir = join(work, 'restored-mid');
  const restored = await cli(['restore', '--store', `file://${storeDir}`, '--data-dir', midDir, '--to-revision', String(mid), '--encryption-key-file', keyFiles.a]);
  assert.equal(restored.code, 0, restored.stderr);
  await assertRestored(midDir, mid);

  // 3. Without a key / with a wrong key: one line naming the object, nothing restored.
  const noKeyDir = join(work, 'restored-nokey');
  const noKey = await cli(['restore', '--store', `file://${storeDir}`, '--data-dir', noKeyDir]);
  assert.equal(noKey.code, 2, 'a missing key is a usage error');
  assert.equal(errorLines(noKey).length, 1, noKey.stderr);
  assert.match(errorLines(noKey)[0]!, /^etcd-backup: full snapshot full\/\S+\.db\.enc is encrypted: an encryption key is needed to restore it \(--encryption-key-file\)$/);
  await assertNothingRestored(noKeyDir);

  const wrongDir = join(work, 'restored-wrong');
  const wrong = await cli(['restore', '--store', `file://${storeDir}`, '--data-dir', wrongDir, '--encryption-key-file', keyFiles.wrong]);
  assert.equal(wrong.code, 1);
  assert.equal(errorLines(wrong).length, 1, wrong.stderr);
  assert.match(
    errorLines(wrong)[0]!,
    new RegExp(`^etcd-backup: error: cannot decrypt full/\\S+\\.enc: encrypted with key id ${keyId(KEY_A)}; the given key \\(key id ${keyId(WRONG)}\\) does not match$`),
  );
  await assertNothingRestored(wrongDir);

  // 4. Rotation: the same spec with key B continues the chain; restoring past the rotation needs both keys.
  await writeFile(join(secretsDir, 'backup-key', 'key'), KEY_B.toString('base64'));
  const headB = await runUntilArchived(file, secretsDir, store, () => writeMixedWorkload(client, 'c/', 200, 23));
  const second = await listing(store);
  assert.equal(second.fulls.length, 1, 'no new full snapshot: the chain continued');
  const afterRotation = second.deltas.filter((d) => d.fromRevision > headA);
  assert.ok(afterRotation.length >= 1, 'deltas written after the rotation');

  const onlyADir = join(work, 'restored-only-a');
  const onlyA = await cli(['restore', '--store', `file://${storeDir}`, '--data-dir', onlyADir, '--encryption-key-file', keyFiles.a]);
  assert.equal(onlyA.code, 1);
  assert.match(errorLines(onlyA)[0]!, new RegExp(`cannot decrypt delta/\\S+\\.enc: encrypted with key id ${keyId(KEY_B)}; the given key \\(key id ${keyId(KEY_A)}\\) does not match$`));
  await assertNothingRestored(onlyADir);

  const bothDir = join(work, 'restored-both');
  const both = await cli(['restore', '--store', `file://${storeDir}`, '--data-dir', bothDir, '--encryption-key-file', keyFiles.b, '--encryption-key-file', keyFiles.a]);
  assert.equal(both.code, 0, both.stderr);
  assert.match(both.stdout, new RegExp(`revision ${headB}\\b`));
  await assertRestored(bothDir, headB);

  const verified = await cli(['verify', '--store', `file://${storeDir}`, '--encryption-key-file', keyFiles.a, '--encryption-key-file', keyFiles.b, '--endpoints', etcd.clientUrl, '-o', 'json']);
  assert.equal(verified.code, 0, verified.stderr);
  const report = JSON.parse(verified.stdout) as { revision: number; comparison?: { matches: boolean } };
  assert.equal(report.revision, headB, 'verify restored the head');
  assert.equal(report.comparison?.matches, true, 'verify matches the live cluster');

  // 5. Tampering, with the recorded sha256 updated to match (someone with write access to the store):
  //    only the authentication catches it; nothing is restored.
  const tamperedDir = join(work, 'store-tampered');
  await cp(storeDir, tamperedDir, { recursive: true });
  const delta = second.deltas.find((d) => d.fromRevision > snapshotRevision)!;
  await rewriteObject(tamperedDir, delta.key, (bytes) => {
    const copy = Buffer.from(bytes);
    const at = Math.floor(copy.length / 2);
    copy[at] = copy[at]! ^ 0x20;
    return copy;
  });
  const tamperedOut = join(work, 'restored-tampered');
  const tampered = await cli(['restore', '--store', `file://${tamperedDir}`, '--data-dir', tamperedOut, '--encryption-key-file', keyFiles.a, '--encryption-key-file', keyFiles.b]);
  assert.equal(tampered.code, 1);
  assert.equal(errorLines(tampered).length, 1, tampered.stderr);
  assert.match(errorLines(tampered)[0]!, new RegExp(`^etcd-backup: error: cannot decrypt ${delta.key.replace(/\./g, '\\.')}: segment \\d+ failed authentication`));
  await assertNothingRestored(tamperedOut);

  // A full snapshot cut right after a whole segment (the final one lost): "truncated".
  const truncatedDir = join(work, 'store-truncated');
  await cp(storeDir, truncatedDir, { recursive: true });
  const full = second.fulls[0]!;
  const frame = 64 * 1024 + 16;
  const fullBytes = (await readFile(join(storeDir, full.key))).length;
  const segments = Math.ceil((fullBytes - HEADER_BYTES) / frame);
  assert.ok(segments >= 2, `the snapshot spans several segments (${fullBytes} bytes)`);
  await rewriteObject(truncatedDir, full.key, (bytes) => bytes.subarray(0, HEADER_BYTES + (segments - 1) * frame));
  const truncatedOut = join(work, 'restored-truncated');
  const truncated = await cli(['restore', '--store', `file://${truncatedDir}`, '--data-dir', truncatedOut, '--encryption-key-file', keyFiles.a, '--encryption-key-file', keyFiles.b]);
  assert.equal(truncated.code, 1);
  assert.equal(errorLines(truncated).length, 1, truncated.stderr);
  assert.match(
    errorLines(truncated)[0]!,
    new RegExp(`^etcd-backup: error: cannot decrypt ${full.key.replace(/\./g, '\\.')}: truncated after segment ${segments - 2} \\(the final segment is missing\\)$`),
  );
  await assertNothingRestored(truncatedOut);

  // 6. No form of any key in anything the processes printed (logs at debug level included).
  const all = Buffer.concat(output);
  const text = all.toString('latin1');
  assert.ok(text.includes('Uploaded delta'), 'debug logs were captured');
  assert.ok(text.includes(`aes-256-gcm key id ${keyId(KEY_A)}`) && text.includes(keyId(KEY_B)), 'the runs named their keys by id');
  for (const key of [KEY_A, KEY_B, WRONG]) {
    for (const form of [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64')), Buffer.from(key.toString('hex').toUpperCase())]) {
      assert.ok(!all.includes(form), 'key material never appears in output');
    }
  }
});
