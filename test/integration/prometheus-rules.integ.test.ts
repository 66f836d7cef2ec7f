/**
 * config/prometheus/prometheusrule.yaml through Debian's promtool: `check rules` on its spec.groups, and
 * `promtool test rules` with test/prometheus/rules.test.yaml (each alert fires on the series that
 * should fire it and stays quiet on the others). Skips with one line when promtool is missing.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../harness/test-tools.js';

const run = promisify(execFile);
const promtool = spawnSync('promtool', ['--version']).status === 0;
const skip = promtool ? false : 'promtool is not installed: apt-get install prometheus (scripts/install-deps.sh)';

async function extractedRules(dir: string): Promise<string> {
  const rule = parse(await readFile(join(REPO_ROOT, 'config/prometheus/prometheusrule.yaml'), 'utf8')) as {
    kind: string;
    spec: { groups: unknown[] };
  };
  assert.equal(rule.kind, 'PrometheusRule');
  const file = join(dir, 'rules.yaml');
  await writeFile(file, stringify({ groups: rule.spec.groups }));
  return file;
}

test('promtool check rules and promtool test rules pass on the shipped PrometheusRule', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-rules-'));
  try {
    const rules = await extractedRules(dir);
    const checked = await run('promtool', ['check', 'rules', rules]);
    assert.match(checked.stdout, /SUCCESS: 9 rules found/);
    await copyFile(join(REPO_ROOT, 'test/prometheus/rules.test.yaml'), join(dir, 'rules.test.yaml'));
    const tested = await run('promtool', ['test', 'rules', 'rules.test.yaml'], { cwd: dir });
    assert.match(tested.stdout, /SUCCESS/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('promtool test rules fails when an alert does not fire as the tests expect (the tests test something)', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-rules-'));
  try {
    const rules = await extractedRules(dir);
    // Break one rule: delta staleness at thirty periods instead of three.
    await writeFile(rules, (await readFile(rules, 'utf8')).replace('3 * etcdbackup_delta_period_seconds', '30 * etcdbackup_delta_period_seconds'));
    await copyFile(join(REPO_ROOT, 'test/prometheus/rules.test.yaml'), join(dir, 'rules.test.yaml'));
    await assert.rejects(run('promtool', ['test', 'rules', 'rules.test.yaml'], { cwd: dir }), (err: { stdout?: string; stderr?: string }) =>
      /alertname: EtcdBackupDeltaStale/.test(`${err.stdout ?? ''}${err.stderr ?? ''}`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
