import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { canBumpRevision, chooseRestoreTool, hasSnapshotCatchupEntries, parseToolVersion, type Probe } from '../../src/etcd/etcd-tools.js';
import { RestoreError } from '../../src/errors.js';
import { ETCD_VERSIONS, REPO_ROOT } from '../harness/test-tools.js';

// Outputs as the real programs print them (Debian's 3.4.23, 3.5.36 and 3.6.17 built from source).
const versionCases: Array<{ name: string; output: string; version: string | undefined }> = [
  { name: 'etcdctl 3.4', output: 'etcdctl version: 3.4.23\nAPI version: 3.4\n', version: '3.4.23' },
  { name: 'etcdutl 3.6', output: 'etcdutl version: 3.6.17\nAPI version: 3.6\n', version: '3.6.17' },
  { name: 'etcd --version', output: 'etcd Version: 3.5.36\nGit SHA: Not provided\nGo Version: go1.26.8\n', version: '3.5.36' },
  { name: 'a pre-release', output: 'etcdutl version: 3.6.0-rc.5\n', version: '3.6.0-rc.5' },
  { name: 'no version line', output: 'Error: unknown command "version"\n', version: undefined },
];

for (const c of versionCases) {
  test(`parseToolVersion: ${c.name}`, () => assert.equal(parseToolVersion(c.output), c.version));
}

const binaries = { etcdctl: '/bin/etcdctl', etcdutl: '/bin/etcdutl' };
const missing = (name: string): Probe => ({ error: `${name} not found` });

const choiceCases: Array<{ name: string; etcdutl: Probe; etcdctl: Probe; chosen: string | RegExp }> = [
  { name: 'etcdutl 3.6 beside etcdctl 3.6', etcdutl: { version: '3.6.17' }, etcdctl: { version: '3.6.17' }, chosen: 'etcdutl 3.6.17' },
  { name: 'etcdutl 3.5 is preferred to its deprecated etcdctl restore', etcdutl: { version: '3.5.36' }, etcdctl: { version: '3.5.36' }, chosen: 'etcdutl 3.5.36' },
  { name: 'only etcdctl 3.4 (no etcdutl before 3.5)', etcdutl: missing('etcdutl'), etcdctl: { version: '3.4.23' }, chosen: 'etcdctl 3.4.23' },
  { name: 'only etcdctl 3.5', etcdutl: missing('etcdutl'), etcdctl: { version: '3.5.36' }, chosen: 'etcdctl 3.5.36' },
  {
    name: 'only etcdctl 3.6, which has no snapshot restore',
    etcdutl: missing('etcdutl'),
    etcdctl: { version: '3.6.17' },
    chosen: /^etcdctl 3\.6\.17 has no "snapshot restore" \(etcd 3\.6 moved it to etcdutl\) and etcdutl cannot run \(etcdutl not found\): install etcdutl or set ETCDUTL_BIN$/,
  },
  {
    name: 'neither tool',
    etcdutl: missing('etcdutl'),
    etcdctl: missing('etcdctl'),
    chosen: /^no etcd restore tool: etcdutl \(etcdutl not found\) and etcdctl \(etcdctl not found\) cannot run/,
  },
];

for (const c of choiceCases) {
  test(`chooseRestoreTool: ${c.name}`, () => {
    if (typeof c.chosen === 'string') {
      const tool = chooseRestoreTool(binaries, c.etcdutl, c.etcdctl);
      assert.equal(`${tool.name} ${tool.version}`, c.chosen);
      assert.equal(tool.binary, binaries[tool.name]);
    } else {
      const expected = c.chosen;
      assert.throws(() => chooseRestoreTool(binaries, c.etcdutl, c.etcdctl), (err: unknown) => err instanceof RestoreError && expected.test(err.message));
    }
  });
}

test("the Docker image's etcd is the 3.6 version the matrix restores with as the image's tools", async () => {
  const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  assert.equal(/^ARG ETCD_VERSION=(\S+)$/m.exec(dockerfile)?.[1], ETCD_VERSIONS['3.6']);
  assert.match(dockerfile, /^COPY --from=etcd-tools \/out\/etcd \/out\/etcdutl \/usr\/local\/bin\/$/m);
});

test('canBumpRevision: etcdutl 3.5.10 and newer only', () => {
  const tool = (name: 'etcdutl' | 'etcdctl', version: string) => ({ name, binary: name, version });
  assert.equal(canBumpRevision(tool('etcdutl', '3.5.9')), false);
  assert.equal(canBumpRevision(tool('etcdutl', '3.5.10')), true);
  assert.equal(canBumpRevision(tool('etcdutl', '3.5.36')), true);
  assert.equal(canBumpRevision(tool('etcdutl', '3.6.0-rc.1')), true);
  assert.equal(canBumpRevision(tool('etcdctl', '3.5.36')), false, 'etcdctl never had it');
  assert.equal(canBumpRevision(tool('etcdctl', '3.4.23')), false);
});

test('hasSnapshotCatchupEntries: etcd 3.6 and newer only (an unknown version is taken as without)', () => {
  assert.equal(hasSnapshotCatchupEntries('3.4.23'), false);
  assert.equal(hasSnapshotCatchupEntries('3.5.36'), false);
  assert.equal(hasSnapshotCatchupEntries('3.6.17'), true);
  assert.equal(hasSnapshotCatchupEntries('4.0.0'), true);
  assert.equal(hasSnapshotCatchupEntries(undefined), false);
});
