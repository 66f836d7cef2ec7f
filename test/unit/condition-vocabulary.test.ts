/**
 * One reason vocabulary: docs/operator.md's Status table lists every condition type and reason the code
 * has, and the code uses no reason the docs do not list (dashboards and alerts match on them).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConditionType, Reason } from '../../src/controller/conditions.js';
import { REPO_ROOT } from '../harness/test-tools.js';

const docs = readFileSync(join(REPO_ROOT, 'docs/operator.md'), 'utf8');
const statusSection = docs.slice(docs.indexOf('## Status'), docs.indexOf('\n## ', docs.indexOf('## Status') + 1));
const rows = statusSection
  .split('\n')
  .filter((line) => /^\| [A-Z]\w+ \|/.test(line))
  .map((line) => line.split('|').map((cell) => cell.trim()));
const documentedTypes = rows.map((cells) => cells[1]!);
const PASCAL = /\b[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+\b|\b(?:Verified|Suspended|Starting|Deleting|Reconciled)\b/g;
const STATUS_WORDS = new Set(['True', 'False', 'Unknown']);
const documentedReasons = new Set(rows.flatMap((cells) => (cells[3]!.match(PASCAL) ?? []).filter((w) => !STATUS_WORDS.has(w))));
const failureLine = /Failure reasons \(from the error that stopped the work\): ([^.]+)\./.exec(statusSection.replace(/\n/g, ' '));
const documentedFailures = new Set(failureLine?.[1]!.split(/,\s*/).map((w) => w.trim()) ?? []);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}
const sources = sourceFiles(join(REPO_ROOT, 'src')).map((file) => readFileSync(file, 'utf8'));
/** Reasons of OperatorErrors (`super('X'` in a subclass, `new OperatorError('X'`). */
const errorReasons = new Set(sources.flatMap((text) => [...text.matchAll(/(?:super|new OperatorError)\(\s*'([A-Z]\w+)'/g)].map((m) => m[1]!)));

test('docs list exactly the condition types of the code', () => {
  assert.deepEqual([...documentedTypes].sort(), Object.values(ConditionType).sort());
});

test('docs list every condition reason of the code', () => {
  const missing = Object.values(Reason).filter((r) => !documentedReasons.has(r));
  assert.deepEqual(missing, []);
});

test('every reason the docs list exists in the code', () => {
  const known = new Set<string>([...Object.values(Reason), ...errorReasons]);
  assert.deepEqual([...documentedReasons].filter((r) => !known.has(r)), []);
  assert.ok(documentedFailures.size > 0, 'docs list failure reasons');
  assert.deepEqual([...documentedFailures].filter((r) => !errorReasons.has(r)), []);
});

test('reasons the workers set on outcomes are in the vocabulary (no DeltaFailed beside DeltaSnapshotFailed)', () => {
  const literals = sources.flatMap((text) => [...text.matchAll(/lastErrorReason\s*=[^;]*?'([A-Z]\w+)'/g)].map((m) => m[1]!));
  assert.ok(literals.length > 0, 'found the literal reasons');
  const vocabulary = new Set<string>([...documentedReasons, ...documentedFailures]);
  assert.deepEqual(literals.filter((r) => !vocabulary.has(r)), []);
});

/** The row of `type` in the Status table: its reasons cell. */
function reasonsOf(type: string): string {
  const row = rows.find((cells) => cells[1] === type);
  assert.ok(row, `docs have a ${type} row`);
  return row[3]!;
}

test('BackupFresh: its reasons are documented, and the stale ones are Ready and Stalled reasons too', () => {
  for (const reason of [Reason.BackupsFresh, Reason.FullSnapshotStale, Reason.DeltasStale, Reason.NotRunning, Reason.NoSnapshotYet]) {
    assert.match(reasonsOf(ConditionType.BackupFresh), new RegExp(`\\b${reason}\\b`), reason);
  }
  for (const type of [ConditionType.Ready, ConditionType.Stalled]) {
    for (const reason of [Reason.FullSnapshotStale, Reason.DeltasStale]) assert.match(reasonsOf(type), new RegExp(`\\b${reason}\\b`), `${type}: ${reason}`);
  }
});

test('every Event reason the operator and its workers record is listed in the docs', () => {
  const eventsLine = /Events \(events\.k8s\.io\/v1\): ([^]+?)\n\n/.exec(statusSection)?.[1]?.replace(/\n/g, ' ') ?? '';
  const documented = new Set(eventsLine.match(/\b[A-Z][a-z]+(?:[A-Z][a-z]*)+\b/g) ?? []);
  const recorded = new Set(
    sources.flatMap((text) => [...text.matchAll(/(?:emitEvent|recordEvent)\((?:\s*key,)?\s*\{[^}]*?reason: '([A-Z]\w+)'/g)].map((m) => m[1]!)),
  );
  for (const reason of ['RetentionLocked', 'BackupsNotDeleted', 'BackupsDeleted', 'FullSnapshotTaken']) assert.ok(recorded.has(reason), `found ${reason}`);
  assert.deepEqual([...recorded].filter((r) => !documented.has(r)), []);
});

/**
 * What a worker throws lands in a condition's reason (lastErrorReason), so every OperatorError reason
 * of the rooms a worker runs (stores, engine, etcd, archive, crypto, restore for verification) is
 * documented: among them the refusals StoreOfAnotherCluster (store.json names another cluster),
 * ChecksumMissing and UnencryptedObject. Spec refusals (operator policy, insecure endpoints) are
 * InvalidSpec. Not conditions: 'Stopped' (a cancellation), InvalidUsage (the CLI's store URLs; a
 * supervisor that cannot start is SupervisorCrashed) and DataDirNotEmpty (restore into a CLI-given dir;
 * verification restores into a fresh temp dir).
 */
test('every failure reason a worker can report is documented', () => {
  const errorsText = readFileSync(join(REPO_ROOT, 'src/errors.ts'), 'utf8');
  const classReason = new Map<string, string>();
  const classes = [errorsText, ...sources].flatMap((text) => [...text.matchAll(/class (\w+) extends OperatorError \{[^]*?super\(\s*'([A-Z]\w+)'/g)]);
  for (const m of classes) classReason.set(m[1]!, m[2]!);
  const workerRooms = ['store', 'engine', 'etcd', 'archive', 'crypto', 'restore', 'budget'];
  const workerSources = workerRooms.flatMap((room) => sourceFiles(join(REPO_ROOT, 'src', room))).map((file) => readFileSync(file, 'utf8'));
  const thrown = new Set(
    workerSources.flatMap((text) => [
      ...[...text.matchAll(/new (\w+Error)\(/g)].map((m) => classReason.get(m[1]!)).filter((r): r is string => r !== undefined),
      ...[...text.matchAll(/new OperatorError\('([A-Z]\w+)'/g)].map((m) => m[1]!),
    ]),
  );
  for (const never of ['Stopped', 'InvalidUsage', 'DataDirNotEmpty']) thrown.delete(never);
  assert.ok(thrown.has('StoreOfAnotherCluster') && thrown.has('ChecksumMissing'), [...thrown].join(', '));
  const vocabulary = new Set<string>([...documentedReasons, ...documentedFailures]);
  assert.deepEqual([...thrown].filter((r) => !vocabulary.has(r)).sort(), []);
});

test('operator policy refusals are InvalidSpec, which is both a SpecValid and a Stalled reason', () => {
  assert.match(reasonsOf(ConditionType.SpecValid), /\bInvalidSpec\b/);
  assert.match(reasonsOf(ConditionType.Stalled), /\bInvalidSpec\b/);
  assert.match(statusSection, /--allow-local-store/);
});
