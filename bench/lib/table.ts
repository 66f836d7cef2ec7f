/** Markdown tables (which also read well on a terminal). */

export type Align = 'left' | 'right';

export interface Column {
  title: string;
  align?: Align;
}

export function markdownTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, 3, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = (text: string, i: number): string => {
    const width = widths[i] ?? 0;
    return columns[i]?.align === 'right' ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: readonly string[]): string => `| ${columns.map((_, i) => pad(cells[i] ?? '', i)).join(' | ')} |`;
  const rule = `| ${columns
    .map((c, i) => {
      const width = widths[i] ?? 3;
      return c.align === 'right' ? '-'.repeat(width - 1) + ':' : '-'.repeat(width);
    })
    .join(' | ')} |`;
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join('\n');
}
