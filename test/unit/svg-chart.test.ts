import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { barChartSvg, escapeXml, lineChartSvg, niceTicks, wrap, writeChart } from '../../bench/lib/svg-chart.js';

/** Every opened element is closed in order (self-closing ones count as both): XML-ish well-formedness. */
function assertBalanced(svg: string): void {
  const stack: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([a-z]+)\b[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = match;
    if (selfClosing) continue;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else stack.push(name as string);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
}

/** The numeric attribute values `name="..."` of all elements matching `element`. */
function attrs(svg: string, element: string, name: string): number[] {
  return [...svg.matchAll(new RegExp(`<${element}\\b[^>]*?\\b${name}="([^"]+)"`, 'g'))].map((m) => Number(m[1]));
}

const tickCases: Array<{ min: number; max: number; want: number[] }> = [
  { min: 0, max: 1, want: [0, 0.2, 0.4, 0.6, 0.8, 1] },
  { min: 0, max: 97, want: [0, 20, 40, 60, 80, 100] },
  { min: 0, max: 1.16, want: [0, 0.5, 1, 1.5] },
  { min: 0, max: 1000, want: [0, 200, 400, 600, 800, 1000] },
  // Degenerate ranges fall back to [0, 1] rather than looping or dividing by zero.
  { min: 0, max: 0, want: [0, 0.2, 0.4, 0.6, 0.8, 1] },
  { min: 0, max: Number.NaN, want: [0, 0.2, 0.4, 0.6, 0.8, 1] },
];
for (const { min, max, want } of tickCases) {
  test(`niceTicks(${min}, ${max})`, () => assert.deepEqual(niceTicks(min, max), want));
}

test('bar chart: balanced, bars scaled to the axis, goal line and legend, missing values skipped', () => {
  const svg = barChartSvg({
    title: 'Peak RSS <A & B>',
    yLabel: 'MiB',
    categories: ['200 MB', '1 GB'],
    series: [
      { name: 'etcdctl', values: [50, 100] },
      { name: 'ours', values: [25, Number.NaN] },
    ],
    goal: { value: 80, label: 'goal' },
  });
  assertBalanced(svg);
  assert.match(svg, /Peak RSS &lt;A &amp; B&gt;/);
  // Three finite values become three bars (group by group: 50, 25, then 100), heights proportional to
  // the values (axis 0..100); the legend swatches follow them.
  const [a, b, c] = attrs(svg, 'rect', 'height').slice(1); // the first rect is the background
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  assert.ok(Math.abs(a * 2 - c) < 0.1, `50 is half of 100: ${a}, ${c}`);
  assert.ok(Math.abs(b * 2 - a) < 0.1, `25 is half of 50: ${b}, ${a}`);
  assert.equal(attrs(svg, 'rect', 'height').length, 1 + 3 + 2, 'background, 3 bars, 2 legend swatches');
  assert.match(svg, /stroke-dasharray="6 4"/);
  for (const name of ['etcdctl', 'ours', 'goal', '200 MB', '1 GB']) assert.ok(svg.includes(`>${name}<`), name);
  assert.ok(svg.includes('<tspan'), 'category labels are tspans');
});

test('wrap: long category names break at spaces, at most three lines', () => {
  assert.deepEqual(wrap('naive, stalled consumer', 14), ['naive, stalled', 'consumer']);
  assert.deepEqual(wrap('no backup', 14), ['no backup']);
  assert.deepEqual(wrap('a b c d e', 1), ['a', 'b', 'c d e']);
});

test('line chart: balanced, points ordered by x, goal above the data widens the axis', () => {
  const svg = lineChartSvg({
    title: 'RSS vs rate',
    xLabel: 'MB/s',
    yLabel: 'MiB',
    series: [
      { name: 'poller', points: [{ x: 20, y: 40 }, { x: 1, y: 10 }, { x: 5, y: Number.NaN }] },
      { name: 'naive', points: [] },
    ],
    goal: [
      { value: 300, label: 'budget + 64 MiB' },
      { value: 100, label: 'other budget + 64 MiB' },
    ],
  });
  assertBalanced(svg);
  assert.equal(svg.match(/stroke-dasharray/g)?.length, 4, 'two goal lines and their two legend marks');
  const cx = attrs(svg, 'circle', 'cx');
  assert.equal(cx.length, 2, 'the NaN point is left out');
  assert.ok((cx[0] as number) < (cx[1] as number), 'sorted by x');
  assert.ok(svg.includes('>300<'), 'the y axis reaches the goal');
  // The longest legend label (21 characters) fits: the chart widens past the 720 px default.
  const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)?.[1]);
  assert.ok(width > 720 && width >= 530 + 38 + 21 * 7, `width ${width}`);
});

test('writeChart writes the file and returns markdown that embeds it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'svg-chart-'));
  try {
    const svg = barChartSvg({ title: 't', yLabel: 'y', categories: ['a'], series: [{ name: 's', values: [1] }] });
    assert.equal(await writeChart('x-1', 'A [chart]', svg, dir), '![A chart](benchmarks/x-1.svg)');
    assert.equal(await readFile(join(dir, 'x-1.svg'), 'utf8'), svg);
    await assert.rejects(writeChart('../evil', 't', svg, dir), /letters, digits and dashes/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(escapeXml(`"'`), '&quot;&apos;');
});
