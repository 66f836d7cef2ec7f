import { minimumDeltaBudget, type StoreKind } from '../../budget/budget-fit.js';

/**
 * The CEL `x-kubernetes-validations` of the CRD and the patterns they share with the OpenAPI schema,
 * so that the apiserver refuses at `kubectl apply` what the operator would only report as
 * SpecValid=False. ajv ignores CEL: src/api/validate.ts checks the same rules in TypeScript, and
 * test/unit/api-rules.test.ts runs one table of bad specs through both (the real apiserver in
 * test/integration/crd-validation.integ.test.ts).
 */

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden';
}

/** A byte quantity as resource.Quantity reads it, without a sign or milli: `128Mi`, `1G`, `1e9`. */
export const QUANTITY_PATTERN = '^(\\+)?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[kMGTPE]|[eE]\\+?[0-9]+)?$';
/** A Go duration in the units the operator reads (`20s`, `15m`, `1h30m`, `500ms`), or `0`. */
export const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)$';
/**
 * Five cron fields (minute hour day-of-month month day-of-week) or one of croner's macros. Whether the
 * fields hold sensible numbers (`*\/61`) and whether the schedule ever fires is for croner to say: the
 * operator reports those as SpecValid=False.
 */
export const CRON_PATTERN =
  '^\\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?#-]+(\\s+[0-9A-Za-z*/,?#-]+){4})\\s*$';

/** The largest chunkParallelism the schema allows; the budget table has one entry per value. */
export const MAX_CHUNK_PARALLELISM = 64;
const MiB = 2 ** 20;
/** 2^53 bytes: the operator counts bytes in JavaScript numbers, exact only below this. */
const MAX_BUDGET = '8Pi';

/** Duration rules on the field itself; the guard leaves malformed text to the pattern's own error. Patterns go into CEL as raw strings (r'...'): CEL's quoted strings reject \. and \+. */
export function durationRule(test: string, message: string): CelRule {
  return { rule: `!self.matches(r'${DURATION_PATTERN}') || ${test}`, message };
}

export const budgetRangeRule: CelRule = {
  rule:
    `type(self) == int || !self.matches(r'${QUANTITY_PATTERN}') || ` +
    `(quantity(self).isGreaterThan(quantity('0')) && quantity(self).isLessThan(quantity('${MAX_BUDGET}')))`,
  message: `must be a positive quantity below ${MAX_BUDGET} (e.g. 128Mi)`,
};

/**
 * The smallest budget (MiB) per chunkParallelism, for local/s3 with and without encryption, from the
 * same planner the operator uses (src/engine/budget-fit.ts), flat: entry
 * `(s3 ? 128 : 0) + (encrypted ? 64 : 0) + parallelism - 1`.
 */
function minimumTableMiB(): number[] {
  const kinds: Array<[StoreKind, boolean]> = [['local', false], ['local', true], ['s3', false], ['s3', true]];
  return kinds.flatMap(([kind, encrypted]) =>
    Array.from({ length: MAX_CHUNK_PARALLELISM }, (_, i) => minimumDeltaBudget(kind, i + 1, encrypted) / MiB),
  );
}

const TABLE_INDEX =
  `(has(self.store.s3) ? ${2 * MAX_CHUNK_PARALLELISM} : 0) + (has(self.encryption) ? ${MAX_CHUNK_PARALLELISM} : 0) + ` +
  'self.deltaSnapshot.chunkParallelism - 1';

/**
 * spec: the budget holds chunkParallelism maximal revisions (with S3 part buffers and encrypting
 * streams). Skipped where the operator skips it: deltas disabled, or a field another rule refuses.
 * Shaped by the apiserver's cost estimate (checked against the real one): the budget is compared in
 * bytes as an int, and the message indexes a flat list of string literals, because string() of a
 * number or a nested list in a messageExpression is estimated as unbounded.
 */
export function budgetMinimumRule(): CelRule {
  const table = minimumTableMiB();
  const budget = 'self.memory.budget';
  const applies = [
    'has(self.memory) && has(self.memory.budget) && has(self.deltaSnapshot)',
    'has(self.deltaSnapshot.chunkParallelism) && has(self.deltaSnapshot.period)',
    `self.deltaSnapshot.chunkParallelism >= 1 && self.deltaSnapshot.chunkParallelism <= ${MAX_CHUNK_PARALLELISM}`,
    `self.deltaSnapshot.period.matches(r'${DURATION_PATTERN}') && duration(self.deltaSnapshot.period) != duration('0s')`,
    `(type(${budget}) == int || (${budget}.matches(r'${QUANTITY_PATTERN}') && quantity(${budget}).isLessThan(quantity('${MAX_BUDGET}'))))`,
  ].join(' && ');
  const bytes = `(type(${budget}) == int ? ${budget} : quantity(${budget}).asInteger())`;
  return {
    rule: `!(${applies}) || ${bytes} >= [${table.join(',')}][${TABLE_INDEX}] * ${MiB}`,
    messageExpression:
      `'cannot hold spec.deltaSnapshot.chunkParallelism maximal revisions in parallel' + ` +
      `(has(self.store.s3) ? ' with S3 upload buffers' : '') + (has(self.encryption) ? ' and encryption' : '') + ` +
      `'; the minimum for this parallelism is ' + [${table.map((m) => `'${m}Mi'`).join(',')}][${TABLE_INDEX}]`,
    fieldPath: '.memory.budget',
    reason: 'FieldValueInvalid',
  };
}

/**
 * spec.compaction.everyDeltaRevisions below the full-snapshot bound (0 or absent: its default), or the
 * early full snapshot always comes first and compaction never runs.
 */
export function compactionBelowBoundRule(defaultBound: number): CelRule {
  const bound =
    'has(self.fullSnapshot) && has(self.fullSnapshot.maxDeltaRevisions) && self.fullSnapshot.maxDeltaRevisions > 0 ' +
    `? self.fullSnapshot.maxDeltaRevisions : ${defaultBound}`;
  return {
    rule: `!has(self.compaction) || self.compaction.everyDeltaRevisions < (${bound})`,
    message: `must be below spec.fullSnapshot.maxDeltaRevisions (0 means ${defaultBound}): past that a full snapshot is taken instead`,
    fieldPath: '.compaction.everyDeltaRevisions',
    reason: 'FieldValueInvalid',
  };
}
