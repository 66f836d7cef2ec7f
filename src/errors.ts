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

/** A stored object has no recorded sha256, so its content cannot be checked: it is not read. */
export class ChecksumMissingError extends OperatorError {
  constructor(readonly key: string, store: string) {
    super('ChecksumMissing', `${key} in ${store} has no recorded sha256: refusing to read unchecked content`, { terminal: true });
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

/**
 * Encryption keys were given (or spec.encryption is set) but the store holds objects that are not
 * encrypted where a restore would read them. Anyone who can write to the store could plant a
 * plaintext object with a matching sha256, so they are refused unless the user opts in.
 */
export class UnencryptedObjectError extends OperatorError {
  readonly keys: string[];
  constructor(keys: string[]) {
    const listed = keys.slice(0, MAX_LISTED_KEYS).join(', ') + (keys.length > MAX_LISTED_KEYS ? ` and ${keys.length - MAX_LISTED_KEYS} more` : '');
    super(
      'UnencryptedObject',
      `refusing ${keys.length === 1 ? 'an object that is' : `${keys.length} objects that are`} not encrypted although encryption keys were given: ${listed} ` +
        '(anyone who can write to the store could have planted it; --allow-unencrypted accepts unencrypted objects)',
      { terminal: true },
    );
    this.keys = keys;
  }
}

/** How many object names one error message lists; the count of the rest is given. */
const MAX_LISTED_KEYS = 5;

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
