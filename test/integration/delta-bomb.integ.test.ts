/**
 * A compressed delta cannot exhaust memory (issue #14, defect 6): a gzip bomb delta object (a few
 * hundred KB that decompress to 256 MiB without a newline) planted after a real full snapshot makes
 * `restore` fail with one clear line, and the restore process's peak RSS (VmHWM of the child, read
 * from /proc while it runs) stays far below the bomb's size. Before the fix the decoder kept the
 * unterminated line whole: RSS grew past the decompressed size. The same for a bomb of valid events
 * that all belong to one revision (held whole for its txn): about 1 MB decompressing to 256 MiB.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { createGzip } from 'node:zlib';
import { procKbField } from '../../bench/lib/proc-status.js';
import { encodeDeltaLine } from '../../src/archive/delta-format.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { LocalStore } from '../../src/store/local-store.js';
import { deltaKey } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startCli } from '../helpers/cli.js';

const MiB = 1024 * 1024;
const BOMB_BYTES = 256 * MiB;
/** The restore's --memory: the decoder may hold one line of at most this. */
const RESTORE_MEMORY = 16 * MiB;

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'delta-bomb-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** BOMB_BYTES of 'A' (valid base64, no newline) through gzip -9, streamed. */
function gzipBomb(): Readable {
  const block = Buffer.alloc(MiB, 'A');
  const blocks = (function* () {
    for (let i = 0; i < BOMB_BYTES / MiB; i++) yield block;
  })();
  return Readable.from(blocks, { objectMode: false }).pipe(createGzip({ level: 9 }));
}

/** The same valid event line for one revision, repeated until BOMB_BYTES, through gzip -9. */
function sameRevisionBomb(line: string): Readable {
  const block = Buffer.from(line.repeat(Math.floor(MiB / line.length)));
  const blocks = (function* () {
    for (let sent = 0; sent < BOMB_BYTES; sent += block.length) yield block;
  })();
  return Readable.from(blocks, { objectMode: false }).pipe(createGzip({ level: 9 }));
}

/** Runs `restore` as a child process and samples its peak RSS (VmHWM) until it exits. */
async function restoreWithPeakRss(storeDir: string, dataDir: string): Promise<{ code: number | null; errorLines: string[]; peakRss: number }> {
  const child = startCli(['restore', '--store', `file://${storeDir}`, '--data-dir', dataDir, '--memory', '16Mi', '--log-level', 'error']);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  let finished = false;
  void exited.then(() => (finished = true));
  let peakRss = 0;
  while (!finished) {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    peakRss = Math.max(peakRss, procKbField(status, 'VmHWM') ?? 0);
    await sleep(20);
  }
  const [code] = await exited;
  return { code, errorLines: stderr.split('\n').filter((line) => line.startsWith('etcd-backup:')), peakRss };
}

test('a gzip bomb of valid events of one revision makes restore fail clearly without holding them', { timeout: 180_000 }, async () => {
  const client = etcd.client();
  const storeDir = join(work, 'store-revision');
  const store = new LocalStore(storeDir);
  const full = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
  const rev = full.revision + 1;
  const line = encodeDeltaLine({ rev, type: 'PUT', key: Buffer.from('k'), value: Buffer.alloc(64), createRev: rev, modRev: rev, version: 1, lease: '0' });
  const key = deltaKey(rev, rev, { compression: 'gzip', encrypted: false });
  const put = await store.put(key, sameRevisionBomb(line));
  assert.ok(put.size < 2 * MiB, `the bomb is small when stored (${put.size} bytes)`);
  const result = await restoreWithPeakRss(storeDir, join(work, 'restored-revision'));
  console.log(`FIGURES ${JSON.stringify({ storedBytes: put.size, decompressedBytes: BOMB_BYTES, peakRssMiB: Math.round(result.peakRss / MiB) })}`);
  assert.equal(result.code, 1, result.errorLines.join('\n'));
  assert.equal(result.errorLines.length, 1);
  assert.match(result.errorLines[0]!, new RegExp(`${key.replace(/\./g, '\\.')}: revision ${rev} holds more than ${RESTORE_MEMORY} bytes of events`));
  assert.ok(result.peakRss > 0 && result.peakRss < BOMB_BYTES, `peak RSS ${Math.round(result.peakRss / MiB)} MiB stays below the bomb's ${BOMB_BYTES / MiB} MiB`);
});

test('a gzip bomb delta makes restore fail clearly without holding the decompressed line', { timeout: 180_000 }, async () => {
  const client = etcd.client();
  const storeDir = join(work, 'store');
  const store = new LocalStore(storeDir);
  await client.put('k').value('v');
  const full = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
  const key = deltaKey(full.revision + 1, full.revision + 10, { compression: 'gzip', encrypted: false });
  const put = await store.put(key, gzipBomb());
  assert.ok(put.size < MiB, `the bomb is small when stored (${put.size} bytes)`);

  const result = await restoreWithPeakRss(storeDir, join(work, 'restored'));
  console.log(`FIGURES ${JSON.stringify({ storedBytes: put.size, decompressedBytes: BOMB_BYTES, peakRssMiB: Math.round(result.peakRss / MiB) })}`);
  assert.equal(result.code, 1, result.errorLines.join('\n'));
  assert.equal(result.errorLines.length, 1);
  assert.match(result.errorLines[0]!, new RegExp(`${key.replace(/\./g, '\\.')} line 1: longer than ${RESTORE_MEMORY} bytes without a newline`));
  // A line of at most RESTORE_MEMORY is held (plus a few copies in flight); a node process with tsx
  // is about 100-150 MiB. Without the limit the peak exceeds the decompressed size.
  assert.ok(result.peakRss > 0 && result.peakRss < BOMB_BYTES, `peak RSS ${Math.round(result.peakRss / MiB)} MiB stays below the bomb's ${BOMB_BYTES / MiB} MiB`);
});
