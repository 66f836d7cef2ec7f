/**
 * Errors the operator and CLI report to people. `reason` is a PascalCase constant that goes into
 * status conditions and Events; `terminal` means a retry cannot help (the input must change).
 * Code branches on the class, never on the message.
 */
export class OperatorError extends Error {
  readonly reason: string;
  readonly terminal: boolean;

  constructor(reason: string, message: string, options?: { terminal?: boolean; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = reason;
    this.terminal = options?.terminal ?? false;
  }
}

/** The spec or command-line input is wrong; lists every problem. */
export class InvalidSpecError extends OperatorError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('InvalidSpec', problems.join('; '), { terminal: true });
    this.problems = problems;
  }
}

export class UsageError extends OperatorError {
  constructor(message: string) {
    super('InvalidUsage', message, { terminal: true });
  }
}

export class EtcdUnavailableError extends OperatorError {
  constructor(message: string, cause?: unknown) {
    super('EtcdUnavailable', message, { cause });
  }
}

/** A revision the backup needs has been compacted away in etcd. */
export class RevisionCompactedError extends OperatorError {
  constructor(
    readonly requestedRevision: number,
    readonly compactRevision: number | undefined,
    message?: string,
  ) {
    super(
      'RevisionsCompacted',
      message ??
        `etcd revision ${requestedRevision} has been compacted` +
          (compactRevision === undefined ? '' : ` (compacted up to ${compactRevision})`),
    );
  }
}

export class StoreUnreachableError extends OperatorError {
  constructor(message: string, cause?: unknown) {
    super('StoreUnreachable', message, { cause });
  }
}

export class ObjectNotFoundError extends OperatorError {
  constructor(readonly key: string, where: string) {
    super('ObjectNotFound', `object ${key} not found in ${where}`);
  }
}

export class ChecksumMismatchError extends OperatorError {
  constructor(readonly key: string, readonly expected: string, readonly actual: string) {
    super('ChecksumMismatch', `sha256 mismatch for ${key}: recorded ${expected}, content has ${actual}`, {
      terminal: true,
    });
  }
}

export class DataDirNotEmptyError extends OperatorError {
  constructor(readonly dir: string) {
    super('DataDirNotEmpty', `data dir ${dir} is not empty; refusing to overwrite it`, { terminal: true });
  }
}

export class RestoreError extends OperatorError {
  constructor(message: string, cause?: unknown) {
    super('RestoreFailed', message, { cause });
  }
}

/** The message of any thrown value, for one-line reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The object is under S3 Object Lock retention: nobody (not even this operator) can delete it before
 * `retainUntil`. Retention and deletionPolicy Delete leave it and report it; a retry before that
 * time cannot help.
 */
export class ObjectLockedError extends OperatorError {
  constructor(
    readonly key: string,
    readonly retainUntil: Date | undefined,
    readonly mode: string | undefined,
    where: string,
  ) {
    super(
      'ObjectLocked',
      `object ${key} in ${where} is under S3 Object Lock` +
        (mode ? ` (${mode})` : '') +
        (retainUntil ? ` until ${retainUntil.toISOString()}` : '') +
        ' and cannot be deleted yet',
      { terminal: true },
    );
  }
}
