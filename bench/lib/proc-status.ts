/** A `<field>: N kB` line of /proc/<pid>/status (or smaps_rollup) in bytes; undefined when absent. */
export function procKbField(text: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
  return match?.[1] ? Number(match[1]) * 1024 : undefined;
}
