import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** A JSON logger whose output the test reads back: `text()` is everything so far, `lines()` parsed. */
export function capturedLogger(level: 'debug' | 'info' = 'debug'): {
  logger: Logger;
  text(): string;
  lines(): Array<Record<string, unknown> & { message?: string }>;
} {
  const chunks: string[] = [];
  const logger = createLogger({
    format: 'json',
    level,
    stream: new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    }),
  });
  const text = (): string => chunks.join('');
  return {
    logger,
    text,
    lines: () =>
      text()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown> & { message?: string }),
  };
}
