/** Reading what an operator process printed, and whether its workers still run. */

/** The JSON log lines among `lines`, optionally only those with this message. */
export function jsonLogLines(lines: readonly string[], message?: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of lines) {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (!message || parsed.message === message) out.push(parsed);
    } catch {
      // non-JSON output (warnings from node): ignore
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
