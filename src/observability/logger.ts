import winston from 'winston';

export type Logger = winston.Logger;
export type LogFormat = 'json' | 'text';

/** Field names whose values are never written to logs. */
const SECRET_FIELD =
  /pass(word|wd)?|secret|token|credential|authorization|cookie|session|(private|encryption|api|signing)[-_]?key|^key$/i;
/** Deeper than this, values are dropped rather than walked: nothing is ever logged unredacted. */
const MAX_DEPTH = 8;
export const REDACTED = '[REDACTED]';

/** Replaces values of secret-looking fields, at any depth, with a marker. */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[TRUNCATED]';
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (value instanceof Error) return value.message;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SECRET_FIELD.test(key) ? REDACTED : redact(inner, depth + 1);
  }
  return out;
}

// A new record (spread keeps winston's symbol keys): `info` may be the caller's own object.
const redactFormat = winston.format((info) => {
  const out = { ...info };
  for (const key of Object.keys(out)) {
    if (key === 'level' || key === 'message') continue;
    out[key] = SECRET_FIELD.test(key) ? REDACTED : redact(out[key]);
  }
  return out;
});

export interface LoggerOptions {
  format?: LogFormat;
  level?: string;
  /** Defaults to stderr so that stdout stays free for command output (list, verify). */
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format =
    options.format === 'text'
      ? winston.format.combine(
          redactFormat(),
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...fields }) => {
            const extra = Object.entries(fields)
              .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
              .join(' ');
            return `${String(timestamp)} ${level.toUpperCase().padEnd(5)} ${String(message)}${extra ? ' ' + extra : ''}`;
          }),
        )
      : winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json());
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] });
  return winston.createLogger({ level: options.level ?? 'info', format, transports: [transport] });
}

/** A logger that drops everything (tests and library callers that do not care). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
