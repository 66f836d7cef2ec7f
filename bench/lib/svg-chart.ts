/**
 * Dependency-free SVG charts for docs/benchmarks.md: a grouped bar chart and a line chart, each with
 * axes, tick labels, a legend and an optional horizontal goal line.
 *
 *   const svg = barChartSvg({ title, yLabel: 'MiB', categories: ['200 MB', '1 GB'],
 *                             series: [{ name: 'etcdctl', values: [31, 32] }, { name: 'ours', values: [85, 90] }],
 *                             goal: { value: 1.1, label: 'goal 1.1x' } });
 *   const markdown = await writeChart('full-snapshot-rss', title, svg);   // ![title](benchmarks/full-snapshot-rss.svg)
 *
 * The *Svg functions are pure (spec -> string); only writeChart touches the disk. Values that are not
 * finite (NaN, Infinity; a missing measurement) are left out of the drawing rather than breaking it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Goal {
  value: number;
  label: string;
}

export interface BarChartSpec {
  title: string;
  yLabel: string;
  /** One group of bars per category (x axis). */
  categories: readonly string[];
  /** One bar per series in each group; values[i] belongs to categories[i]. */
  series: readonly { name: string; values: readonly number[] }[];
  /** Horizontal dashed line(s), e.g. a threshold per budget. */
  goal?: Goal | readonly Goal[];
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly { name: string; points: readonly { x: number; y: number }[] }[];
  goal?: Goal | readonly Goal[];
}

/** Minimum width; a chart is wider when its legend labels need it. */
const WIDTH = 720;
const HEIGHT = 400;
/** Plot area inside the margins (left leaves room for tick labels, right for the legend). */
const PLOT = { left: 70, top: 40, right: WIDTH - 190, bottom: HEIGHT - 60 };
/** Colour-blind-safe palette (Okabe-Ito), cycled. */
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];
/** Goal lines: red, then darker shades when there are several. */
const GOAL_COLOURS = ['#C00000', '#7A0000', '#FF6060'];

function goals(goal: Goal | readonly Goal[] | undefined): Goal[] {
  const list: readonly Goal[] = goal === undefined ? [] : Array.isArray(goal) ? goal : [goal as Goal];
  return list.filter((g) => Number.isFinite(g.value));
}

export function colour(i: number): string {
  return COLOURS[i % COLOURS.length] as string;
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** Rounded to 2 decimals so the output is small and stable. */
function n(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/**
 * Axis ticks from `min` to at least `max` at a 1/2/5 x 10^k step, about `count` of them. Degenerate
 * input (max <= min, not finite) gives the ticks of [0, 1].
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max <= min) return niceTicks(0, 1, count);
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let t = first; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function formatTick(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${n(value / 1e6)}M`;
  if (abs >= 1e4) return `${n(value / 1e3)}k`;
  return n(value);
}

interface Scale {
  ticks: number[];
  toY(value: number): number;
}

function yScale(values: readonly number[], goal?: Goal | readonly Goal[]): Scale {
  const finite = [...values, ...goals(goal).map((g) => g.value)].filter(Number.isFinite);
  const max = finite.length ? Math.max(...finite) : 1;
  const min = Math.min(0, ...finite);
  const ticks = niceTicks(min, max > min ? max : min + 1);
  const lo = ticks[0] as number;
  const hi = ticks[ticks.length - 1] as number;
  return { ticks, toY: (v) => PLOT.bottom - ((v - lo) / (hi - lo)) * (PLOT.bottom - PLOT.top) };
}

/** Total width: the plot, then the legend (swatch, gap, label at ~7 px a character). */
function chartWidth(labels: readonly string[]): number {
  const longest = Math.max(0, ...labels.map((l) => l.length));
  return Math.max(WIDTH, Math.ceil(PLOT.right + 16 + 22 + longest * 7 + 10));
}

function frame(title: string, yLabel: string, scale: Scale, width: number): string[] {
  const parts = [
    `<rect x="0" y="0" width="${width}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    `<text transform="translate(16 ${n((PLOT.top + PLOT.bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(yLabel)}</text>`,
  ];
  for (const tick of scale.ticks) {
    const y = n(scale.toY(tick));
    parts.push(
      `<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.right}" y2="${y}" stroke="#e0e0e0"/>`,
      `<text x="${PLOT.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${formatTick(tick)}</text>`,
    );
  }
  parts.push(
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}" stroke="#000000"/>`,
    `<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}" stroke="#000000"/>`,
  );
  return parts;
}

function goalLine(scale: Scale, goal: Goal | readonly Goal[] | undefined): string[] {
  return goals(goal).map((g, i) => {
    const y = n(scale.toY(g.value));
    return `<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.right}" y2="${y}" stroke="${GOAL_COLOURS[i % GOAL_COLOURS.length]}" stroke-width="1.5" stroke-dasharray="6 4"/>`;
  });
}

function legend(entries: readonly { name: string; colour: string; dashed?: boolean }[]): string[] {
  return entries.flatMap((entry, i) => {
    const y = PLOT.top + 8 + i * 20;
    const x = PLOT.right + 16;
    const mark = entry.dashed
      ? `<line x1="${x}" y1="${y}" x2="${x + 16}" y2="${y}" stroke="${entry.colour}" stroke-width="1.5" stroke-dasharray="6 4"/>`
      : `<rect x="${x}" y="${y - 6}" width="16" height="12" fill="${entry.colour}"/>`;
    return [mark, `<text x="${x + 22}" y="${y}" dominant-baseline="middle" font-size="12">${escapeXml(entry.name)}</text>`];
  });
}

function svg(parts: readonly string[], title: string, width: number): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="sans-serif" role="img">`,
    `<title>${escapeXml(title)}</title>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

function goalLegend(goal: Goal | readonly Goal[] | undefined): { name: string; colour: string; dashed: boolean }[] {
  return goals(goal).map((g, i) => ({ name: g.label, colour: GOAL_COLOURS[i % GOAL_COLOURS.length] as string, dashed: true }));
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own), at most 3. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const last = lines[lines.length - 1];
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.length > 3 ? [...lines.slice(0, 2), lines.slice(2).join(' ')] : lines;
}

export function barChartSvg(spec: BarChartSpec): string {
  const scale = yScale(spec.series.flatMap((s) => s.values), spec.goal);
  const entries = [...spec.series.map((s, i) => ({ name: s.name, colour: colour(i) })), ...goalLegend(spec.goal)];
  const width = chartWidth(entries.map((e) => e.name));
  const parts = frame(spec.title, spec.yLabel, scale, width);
  const groups = Math.max(spec.categories.length, 1);
  const groupWidth = (PLOT.right - PLOT.left) / groups;
  const barWidth = (groupWidth * 0.8) / Math.max(spec.series.length, 1);
  const zeroY = scale.toY(Math.max(0, scale.ticks[0] as number));
  spec.categories.forEach((category, g) => {
    const groupX = PLOT.left + g * groupWidth + groupWidth * 0.1;
    spec.series.forEach((series, s) => {
      const value = series.values[g];
      if (value === undefined || !Number.isFinite(value)) return;
      const y = scale.toY(value);
      const x = groupX + s * barWidth;
      parts.push(
        `<rect x="${n(x)}" y="${n(Math.min(y, zeroY))}" width="${n(barWidth * 0.92)}" height="${n(Math.abs(zeroY - y))}" fill="${colour(s)}"><title>${escapeXml(`${series.name}, ${category}: ${n(value)}`)}</title></rect>`,
        `<text x="${n(x + barWidth * 0.46)}" y="${n(Math.min(y, zeroY) - 3)}" text-anchor="middle" font-size="10">${formatTick(value)}</text>`,
      );
    });
    // Long category names wrap onto up to three lines (~6.5 px a character) rather than overlap.
    const x = n(PLOT.left + (g + 0.5) * groupWidth);
    const lines = wrap(category, Math.max(4, Math.floor(groupWidth / 6.5)));
    const tspans = lines.map((line, i) => `<tspan x="${x}" dy="${i === 0 ? 0 : 13}">${escapeXml(line)}</tspan>`).join('');
    parts.push(`<text x="${x}" y="${PLOT.bottom + 18}" text-anchor="middle" font-size="12">${tspans}</text>`);
  });
  parts.push(...goalLine(scale, spec.goal));
  parts.push(...legend(entries));
  return svg(parts, spec.title, width);
}

export function lineChartSvg(spec: LineChartSpec): string {
  const points = spec.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const scale = yScale(
    points.map((p) => p.y),
    spec.goal,
  );
  const xs = points.map((p) => p.x);
  const xTicks = niceTicks(Math.min(0, ...xs), xs.length ? Math.max(...xs) : 1);
  const xLo = xTicks[0] as number;
  const xHi = xTicks[xTicks.length - 1] as number;
  const toX = (x: number): number => PLOT.left + ((x - xLo) / (xHi - xLo)) * (PLOT.right - PLOT.left);
  const entries = [...spec.series.map((s, i) => ({ name: s.name, colour: colour(i) })), ...goalLegend(spec.goal)];
  const width = chartWidth(entries.map((e) => e.name));
  const parts = frame(spec.title, spec.yLabel, scale, width);
  for (const tick of xTicks) {
    parts.push(`<text x="${n(toX(tick))}" y="${PLOT.bottom + 18}" text-anchor="middle" font-size="11">${formatTick(tick)}</text>`);
  }
  parts.push(`<text x="${n((PLOT.left + PLOT.right) / 2)}" y="${HEIGHT - 16}" text-anchor="middle" font-size="12">${escapeXml(spec.xLabel)}</text>`);
  parts.push(...goalLine(scale, spec.goal));
  spec.series.forEach((series, s) => {
    const finite = series.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (finite.length === 0) return;
    const path = finite.map((p) => `${n(toX(p.x))},${n(scale.toY(p.y))}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="${colour(s)}" stroke-width="2"/>`);
    for (const p of finite) {
      parts.push(
        `<circle cx="${n(toX(p.x))}" cy="${n(scale.toY(p.y))}" r="3.5" fill="${colour(s)}"><title>${escapeXml(`${series.name}: ${n(p.x)}, ${n(p.y)}`)}</title></circle>`,
      );
    }
  });
  parts.push(...legend(entries));
  return svg(parts, spec.title, width);
}

/** docs/benchmarks/, where the charts live (docs/benchmarks.md links them relatively). */
export const CHART_DIR = fileURLToPath(new URL('../../docs/benchmarks/', import.meta.url));

/**
 * Writes `svg` to docs/benchmarks/<name>.svg and returns the markdown that embeds it from
 * docs/benchmarks.md. `name` is a file name without extension (letters, digits, dashes).
 */
export async function writeChart(name: string, title: string, svgText: string, dir = CHART_DIR): Promise<string> {
  if (!/^[a-z0-9][a-z0-9-]*$/i.test(name)) throw new Error(`chart name must be letters, digits and dashes: ${name}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.svg`), svgText);
  return `![${title.replace(/[[\]]/g, '')}](benchmarks/${name}.svg)`;
}
