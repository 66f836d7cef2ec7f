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
