import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  /** Default 100 ms. */
  intervalMs?: number;
  /** A probe that throws is "not yet" (an API object that does not exist yet); the last error is reported. */
  retryErrors?: boolean;
  /** Appended to the timeout message (e.g. a log tail). */
  context?: () => string;
}

/**
 * Polls `probe` until it returns something other than undefined or false, and returns that; fails
 * with "timed out after N ms waiting for <what>" otherwise. The one wait loop of the tests.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (!options.retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      const context = options.context ? `\n${options.context()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}${context}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}
