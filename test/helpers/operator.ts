import { PassThrough } from 'node:stream';
import { runOperator, type OperatorOptions } from '../../src/controller/operator.js';
import { createLogger } from '../../src/observability/logger.js';

export interface InProcessOperator {
  /** The operator's JSON log lines, as they come. */
  readonly log: string[];
  /** Lines whose message is exactly `message`. */
  logged(message: string): string[];
  stop(): Promise<void>;
}

/** The operator in this process (metrics on a free 127.0.0.1 port), logging into `log`; stop() ends it. */
export function startInProcessOperator(options: Omit<OperatorOptions, 'logger' | 'signal' | 'metricsPort'>): InProcessOperator {
  const log: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
  const abort = new AbortController();
  const done = runOperator({
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    ...options,
    logger: createLogger({ format: 'json', level: 'info', stream }),
    signal: abort.signal,
  });
  return {
    log,
    logged: (message) => log.filter((line) => line.includes(`"message":"${message}"`)),
    async stop() {
      abort.abort();
      await done.catch(() => undefined);
    },
  };
}

/**
 * For the API test server's onRequest: records the URL of every request that reads Secrets (get,
 * list, watch) except kubectl's (the tests' own client).
 */
export function secretReadRecorder(): { reads: string[]; onRequest(request: { method: string; url: string; userAgent: string }): void } {
  const reads: string[] = [];
  return {
    reads,
    onRequest: ({ method, url, userAgent }) => {
      if (method === 'GET' && /\/secrets(\/|\?|$)/.test(url) && !userAgent.startsWith('kubectl')) reads.push(url);
    },
  };
}
