/**
 * Local store and key file hardening (issue #14, defect 9), on a real directory: backups are 0600
 * and the directories the store creates 0700; a directory it creates is fsynced into its parent
 * (watched with strace in a child process); an object whose sidecar records no sha256 is refused,
 * naming it; and `restore` refuses a key file of 32 printable bytes (a passphrase) in one clear line.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ChecksumMissingError } from '../../src/errors.js';
import { LocalStore } from '../../src/store/local-store.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';

const run = promisify(execFile);

let work: string;
let savedUmask: number;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'local-store-hardening-'));
  // The usual umask (022) would leave 0640 files group-readable: what the store asks for decides.
  savedUmask = process.umask(0o022);
});

after(async () => {
  process.umask(savedUmask);
  if (work) await rm(work, { recursive: true, force: true });
});

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

test('objects and sidecars are 0600, directories the store creates are 0700', async () => {
  const root = join(work, 'modes', 'store');
  const store = new LocalStore(root);
  await store.put('full/00000000000000000005-1700000000.db', Buffer.from('snapshot'));
  await store.put('delta/00000000000000000006-00000000000000000009.jsonl', Buffer.from('{}\n'));
  for (const file of ['full/00000000000000000005-1700000000.db', 'delta/00000000000000000006-00000000000000000009.jsonl']) {
    assert.equal((await modeOf(join(root, file))).toString(8), '600', file);
    assert.equal((await modeOf(join(root, `${file}.meta.json`))).toString(8), '600', `${file}.meta.json`);
  }
  for (const dir of [join(work, 'modes'), root, join(root, 'full'), join(root, 'delta')]) {
    assert.equal((await modeOf(dir)).toString(8), '700', dir);
  }
});

test('a directory the store creates is fsynced into its parent, and each rename into its directory', async (t) => {
  const strace = await run('strace', ['-V']).then(() => true, () => false);
  if (!strace) return t.skip('strace is not installed');
  const root = join(work, 'fsync', 'store');
  const traceFile = join(work, 'fsync.trace');
  const script = `import { LocalStore } from ${JSON.stringify(join(REPO_ROOT, 'src/store/local-store.ts'))};
await new LocalStore(${JSON.stringify(root)}).put('full/00000000000000000005-1700000000.db', Buffer.from('snapshot'));`;
  // -y prints each fd's path: fsync(17</tmp/.../store>) names the directory synced.
  await run('strace', ['-f', '-qq', '-y', '-e', 'trace=fsync', '-o', traceFile, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT });
  const synced = new Set([...(await readFile(traceFile, 'utf8')).matchAll(/fsync\(\d+<([^>]+)>\)/g)].map((m) => m[1]));
  for (const dir of [work, join(work, 'fsync'), root, join(root, 'full')]) {
    assert.ok(synced.has(dir), `${dir} was fsynced (saw ${[...synced].join(', ')})`);
  }
});

test('an object without a recorded sha256 is refused, naming it', async () => {
  const root = join(work, 'unchecked');
  const store = new LocalStore(root);
  const key = 'full/00000000000000000005-1700000000.db';
  await store.put(key, Buffer.from('snapshot'));
  // Someone rewrote the sidecar without the checksum (or an old tool wrote the object).
  await writeFile(join(root, `${key}.meta.json`), JSON.stringify({ size: 8, metadata: {} }));
  await assert.rejects(store.get(key), (err: unknown) => {
    assert.ok(err instanceof ChecksumMissingError, String(err));
    assert.equal(err.message, `${key} in file://${root} has no recorded sha256: refusing to read unchecked content`);
    return true;
  });
});

test('restore refuses a key file of 32 printable bytes in one line that never shows it', async () => {
  const keyFile = join(work, 'passphrase.key');
  const passphrase = 'Summer2026!Summer2026!Summer202';
  await writeFile(keyFile, `${passphrase}\n`); // 32 bytes with the newline, as `echo` writes it
  assert.equal((await readFile(keyFile)).length, 32);
  await mkdir(join(work, 'empty-store'), { recursive: true });
  const result = await runCli(['restore', '--store', `file://${join(work, 'empty-store')}`, '--data-dir', join(work, 'restored'), '--encryption-key-file', keyFile]);
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.split('\n').filter((line) => line.startsWith('etcd-backup:'));
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, new RegExp(`--encryption-key-file ${keyFile} holds 32 printable characters, which looks like a passphrase, not a key`));
  assert.ok(!result.stderr.includes('Summer'), 'the key file content is never printed');
});
