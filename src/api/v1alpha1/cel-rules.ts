import { minimumDeltaBudget, type StoreKind } from '../../engine/budget-fit.js';

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

/** Duration rules on the field itself; the guard leaves malformed text to the pattern's own error. */
export function durationRule(test: string, message: string): CelRule {
  return { rule: `!self.matches('${DURATION_PATTERN}') || ${test}`, message };
}

export const budgetRangeRule: CelRule = {
  rule:
    `type(self) == int || !self.matches('${QUANTITY_PATTERN}') || ` +
    `(quantity(self).isGreaterThan(quantity('0')) && quantity(self).isLessThan(quantity('${MAX_BUDGET}')))`,
  message: `must be a positive quantity below ${MAX_BUDGET} (e.g. 128Mi)`,
};

/**
 * The smallest budget (MiB) per chunkParallelism, for local/s3 with and without encryption, from the
 * same planner the operator uses (src/engine/budget-fit.ts), as a CEL list indexed by store and
 * parallelism: `[[local], [local encrypted], [s3], [s3 encrypted]][store][parallelism - 1]`.
 */
function minimumTable(): string {
  const kinds: Array<[StoreKind, boolean]> = [['local', false], ['local', true], ['s3', false], ['s3', true]];
  const rows = kinds.map(([kind, encrypted]) => {
    const row: number[] = [];
    for (let p = 1; p <= MAX_CHUNK_PARALLELISM; p++) row.push(minimumDeltaBudget(kind, p, encrypted) / MiB);
    return `[${row.join(',')}]`;
  });
  return (
    `[${rows.join(',')}]` +
    `[(has(self.store.s3) ? 2 : 0) + (has(self.encryption) ? 1 : 0)][self.deltaSnapshot.chunkParallelism - 1]`
  );
}

/**
 * spec: the budget holds chunkParallelism maximal revisions (with S3 part buffers and encrypting
 * streams). Skipped where the operator skips it: deltas disabled, or a field another rule refuses.
 */
export function budgetMinimumRule(): CelRule {
  const minimum = minimumTable();
  const budget = 'self.memory.budget';
  const applies = [
    'has(self.memory) && has(self.memory.budget) && has(self.deltaSnapshot)',
    'has(self.deltaSnapshot.chunkParallelism) && has(self.deltaSnapshot.period)',
    `self.deltaSnapshot.chunkParallelism >= 1 && self.deltaSnapshot.chunkParallelism <= ${MAX_CHUNK_PARALLELISM}`,
    `self.deltaSnapshot.period.matches('${DURATION_PATTERN}') && duration(self.deltaSnapshot.period) != duration('0s')`,
    `(type(${budget}) == int || ${budget}.matches('${QUANTITY_PATTERN}'))`,
  ].join(' && ');
  const bytes = `quantity(type(${budget}) == int ? string(${budget}) : ${budget})`;
  return {
    rule: `!(${applies}) || ${bytes}.compareTo(quantity(string(${minimum}) + 'Mi')) >= 0`,
    messageExpression:
      `'cannot hold ' + string(self.deltaSnapshot.chunkParallelism) + ' maximal revisions in parallel' + ` +
      `(has(self.store.s3) ? ' with S3 upload buffers' : '') + (has(self.encryption) ? ' and encryption' : '') + ` +
      `'; the minimum for chunkParallelism ' + string(self.deltaSnapshot.chunkParallelism) + ' is ' + ` +
      `string(${minimum}) + 'Mi'`,
    fieldPath: '.memory.budget',
    reason: 'FieldValueInvalid',
  };
}
