import { Ajv, type ErrorObject } from 'ajv';
import { Cron } from 'croner';
import { deltaParallelismFor, minimumDeltaBudget } from '../budget/budget-fit.js';
import { parseObjectLock } from './object-lock.js';
import { parseDuration } from './duration.js';
import { formatBytes, parseQuantity } from './quantity.js';
import { API_VERSION, KIND, type EtcdBackup, type EtcdBackupSpec } from './v1alpha1/etcd-backup-types.js';
import { CRON_PATTERN, DURATION_PATTERN, QUANTITY_PATTERN } from './v1alpha1/cel-rules.js';
import { DEFAULT_MAX_DELTA_REVISIONS, etcdBackupSchema } from './v1alpha1/schema.js';

const MAX_CHUNK_PARALLELISM = etcdBackupSchema.properties.spec.properties.deltaSnapshot.properties.chunkParallelism.maximum;

/** The spec after defaulting, with units resolved: what the engine runs on. */
export interface ResolvedSpec {
  spec: EtcdBackupSpec;
  budgetBytes: number;
  fullSnapshotTimeoutMs: number;
  deltaPeriodMs: number;
  /** spec.fullSnapshot.maxDeltaRevisions with 0 (or absent) resolved to the default. */
  maxDeltaRevisions: number;
}

export type ValidationResult =
  | { ok: true; backup: EtcdBackup; resolved: ResolvedSpec }
  | { ok: false; problems: string[] };

const ajv = new Ajv({ allErrors: true, useDefaults: true, validateFormats: false, strictTypes: false });
// CEL rules (x-kubernetes-validations) are for the apiserver; checkSemantics below holds the same rules.
for (const keyword of ['x-kubernetes-int-or-string', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-validations']) {
  ajv.addKeyword(keyword);
}
const validateShape = ajv.compile(etcdBackupSchema);

/** `/spec/deltaSnapshot/chunkParallelism` -> `spec.deltaSnapshot.chunkParallelism` */
function fieldPath(error: ErrorObject): string {
  const parts = error.instancePath.split('/').slice(1).map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'required') parts.push(String((error.params as { missingProperty: string }).missingProperty));
  if (error.keyword === 'additionalProperties') {
    parts.push(String((error.params as { additionalProperty: string }).additionalProperty));
  }
  return parts.map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : (i === 0 ? '' : '.') + part)).join('');
}

function describeShapeError(error: ErrorObject): string {
  const path = fieldPath(error);
  switch (error.keyword) {
    case 'required':
      return `${path}: required`;
    case 'enum':
      return `${path}: must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'anyOf':
      return `${path}: must be an integer or a string`;
    default:
      return `${path}: ${error.message ?? 'invalid'}`;
  }
}

/** Schema keywords whose field checkSemantics also checks, with a message that names the value. */
const SUPERSEDED_BY_SEMANTICS = new Set(['pattern', 'minimum']);

function describePattern(path: string, error: ErrorObject): string {
  const pattern = (error.params as { pattern: string }).pattern;
  const kind = pattern === CRON_PATTERN ? 'a cron schedule (5 fields or @hourly, @daily...)' : pattern === DURATION_PATTERN
    ? 'a duration (e.g. 20s, 15m, 1h30m)' : pattern === QUANTITY_PATTERN ? 'a quantity (e.g. 128Mi)' : `text matching ${pattern}`;
  return `${path}: must be ${kind}`;
}

/** Checks a cron expression the way the scheduler will use it; returns a problem or undefined. */
export function cronProblem(expression: string): string | undefined {
  const trimmed = expression.trim();
  if (!trimmed.startsWith('@') && trimmed.split(/\s+/).length !== 5) {
    return `invalid cron expression ${JSON.stringify(expression)}: expected 5 fields (minute hour day-of-month month day-of-week)`;
  }
  try {
    const cron = new Cron(trimmed, { timezone: 'UTC', paused: true });
    if (cron.nextRun() === null) return `cron expression ${JSON.stringify(expression)} never fires`;
    return undefined;
  } catch {
    return `invalid cron expression ${JSON.stringify(expression)}`;
  }
}

function isUrl(text: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

/**
 * Validates an EtcdBackup document (from YAML or the API), applies defaults, and returns every
 * problem with its field path. Never throws for bad input.
 */
export function validateEtcdBackup(input: unknown): ValidationResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: ['document: expected an EtcdBackup object'] };
  }
  const doc = structuredClone(input) as Record<string, unknown>;
  const problems: string[] = [];
  if (doc.apiVersion !== API_VERSION) problems.push(`apiVersion: must be ${API_VERSION}`);
  if (doc.kind !== KIND) problems.push(`kind: must be ${KIND}`);
  const shapeValid = validateShape(doc);
  // Semantic checks run even when the shape is wrong, so one pass lists every problem; each
  // check looks only at fields that have the right type.
  const spec = (doc.spec ?? {}) as Partial<EtcdBackupSpec>;
  const semantic: string[] = [];
  const units = checkSemantics(spec, semantic);
  if (!shapeValid) {
    // anyOf reports each branch too; the anyOf line itself says it all.
    const errors = (validateShape.errors ?? []).filter(
      (e) => !(e.keyword === 'type' && /\/anyOf\/\d+\/type$/.test(e.schemaPath)),
    );
    for (const error of errors) {
      const path = fieldPath(error);
      // A pattern or range the semantic check of the same field says better (naming the value) is left to it.
      if (SUPERSEDED_BY_SEMANTICS.has(error.keyword) && semantic.some((problem) => problem.startsWith(`${path}:`))) continue;
      problems.push(error.keyword === 'pattern' ? describePattern(path, error) : describeShapeError(error));
    }
  }
  problems.push(...semantic);
  if (!shapeValid || problems.length > 0) return { ok: false, problems: [...new Set(problems)] };
  const backup = doc as unknown as EtcdBackup;
  return { ok: true, backup, resolved: { spec: backup.spec, ...(units as Units) } };
}

type Units = Omit<ResolvedSpec, 'spec'>;

function checkSemantics(spec: Partial<EtcdBackupSpec>, problems: string[]): Partial<Units> {
  const endpoints = spec.etcd?.endpoints;
  if (Array.isArray(endpoints)) {
    endpoints.forEach((endpoint, i) => {
      if (typeof endpoint === 'string' && !isUrl(endpoint, ['http:', 'https:'])) {
        problems.push(`spec.etcd.endpoints[${i}]: ${JSON.stringify(endpoint)} is not an http:// or https:// URL`);
      }
    });
  }

  const store = spec.store ?? {};
  const stores = (['s3', 'local'] as const).filter((kind) => store[kind] !== undefined);
  if (stores.length !== 1) {
    problems.push(`spec.store: exactly one of s3 or local must be set (found ${stores.length ? stores.join(' and ') : 'none'})`);
  }
  const localPath = store.local?.path;
  if (typeof localPath === 'string' && !localPath.startsWith('/')) {
    problems.push(`spec.store.local.path: must be an absolute path`);
  }
  // The operator computes a pod worker's status from the store; a path on the pod's filesystem is
  // invisible to it (and gone with the pod).
  if (spec.runner === 'pod' && store.local !== undefined) {
    problems.push('spec.runner: pod needs an s3 store (a local path would be on the worker pod\'s filesystem)');
  }
  const s3Endpoint = store.s3?.endpoint;
  if (typeof s3Endpoint === 'string' && s3Endpoint !== '' && !isUrl(s3Endpoint, ['http:', 'https:'])) {
    problems.push(`spec.store.s3.endpoint: ${JSON.stringify(s3Endpoint)} is not an http(s) URL`);
  }

  const lock = store.s3?.objectLock;
  if (lock && typeof lock.mode === 'string' && typeof lock.retainFor === 'string') {
    const parsed = parseObjectLock(lock.mode, lock.retainFor, 'spec.store.s3.objectLock');
    if ('problem' in parsed) problems.push(parsed.problem);
  }

  const schedule = spec.fullSnapshot?.schedule;
  if (typeof schedule === 'string') {
    const cron = cronProblem(schedule);
    if (cron) problems.push(`spec.fullSnapshot.schedule: ${cron}`);
  }

  const verificationSchedule = spec.verification?.schedule;
  if (typeof verificationSchedule === 'string') {
    const cron = cronProblem(verificationSchedule);
    if (cron) problems.push(`spec.verification.schedule: ${cron}`);
  }

  const timeout = spec.fullSnapshot?.timeout;
  const fullSnapshotTimeoutMs = typeof timeout === 'string' ? parseDuration(timeout) : undefined;
  if (typeof timeout === 'string' && (fullSnapshotTimeoutMs === undefined || fullSnapshotTimeoutMs <= 0)) {
    problems.push(`spec.fullSnapshot.timeout: ${JSON.stringify(timeout)} is not a positive duration (e.g. 15m)`);
  }
  const maxDelta = spec.fullSnapshot?.maxDeltaRevisions;
  // The schema refuses other values (not an integer, below 0, above its maximum).
  const maxDeltaRevisions = typeof maxDelta === 'number' && maxDelta > 0 ? maxDelta : DEFAULT_MAX_DELTA_REVISIONS;
  const compactEvery = spec.compaction?.everyDeltaRevisions;
  if (typeof compactEvery === 'number' && compactEvery >= maxDeltaRevisions) {
    problems.push(
      `spec.compaction.everyDeltaRevisions: ${compactEvery} must be below spec.fullSnapshot.maxDeltaRevisions (${maxDeltaRevisions}): ` +
        'past that a full snapshot is taken instead',
    );
  }
  const period = spec.deltaSnapshot?.period;
  const deltaPeriodMs = typeof period === 'string' ? parseDuration(period) : undefined;
  if (typeof period === 'string' && deltaPeriodMs === undefined) {
    problems.push(`spec.deltaSnapshot.period: ${JSON.stringify(period)} is not a duration (e.g. 20s, or 0 to disable)`);
  } else if (deltaPeriodMs !== undefined && deltaPeriodMs > 0 && deltaPeriodMs < 1000) {
    problems.push(`spec.deltaSnapshot.period: must be at least 1s (or 0 to disable deltas)`);
  }

  const budget = spec.memory?.budget;
  const budgetBytes = typeof budget === 'string' || typeof budget === 'number' ? parseQuantity(budget) : undefined;
  const parallelism = spec.deltaSnapshot?.chunkParallelism;
  if (
    (typeof budget === 'string' || typeof budget === 'number') &&
    (budgetBytes === undefined || budgetBytes <= 0 || !Number.isSafeInteger(budgetBytes))
  ) {
    problems.push(`spec.memory.budget: ${JSON.stringify(budget)} is not a positive quantity (e.g. 128Mi)`);
  } else if (
    budgetBytes !== undefined &&
    deltaPeriodMs !== 0 &&
    Number.isInteger(parallelism) &&
    parallelism! >= 1 &&
    parallelism! <= MAX_CHUNK_PARALLELISM // beyond it the schema error says it all
  ) {
    const kind = store.s3 ? 's3' : 'local';
    // Encrypted uploads each hold an encrypting stream too (ENCRYPT_STREAM_BYTES).
    const encrypted = spec.encryption !== undefined && spec.encryption !== null;
    if (deltaParallelismFor(kind, budgetBytes, parallelism!, encrypted) < parallelism!) {
      const minimum = minimumDeltaBudget(kind, parallelism!, encrypted);
      problems.push(
        `spec.memory.budget: ${formatBytes(budgetBytes)} cannot hold ${parallelism} maximal revisions in parallel` +
          (kind === 's3' ? ' with S3 upload buffers' : '') +
          (encrypted ? (kind === 's3' ? ' and encryption' : ' with encryption') : '') +
          `; the minimum for chunkParallelism ${parallelism} is ${formatBytes(minimum)}`,
      );
    }
  }
  return { budgetBytes, fullSnapshotTimeoutMs, deltaPeriodMs, maxDeltaRevisions };
}
