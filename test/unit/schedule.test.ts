import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideFullSnapshot, deltaChainTooLong, longestScheduleGapMs, nextScheduledRun, retryDelayMs } from '../../src/engine/schedule.js';

const at = (iso: string): Date => new Date(`${iso}Z`);
const HOURLY = '0 * * * *';

const cases: Array<{ name: string; schedule: string; last?: string; now: string; dueNow: boolean; next: string }> = [
  { name: 'no snapshot yet: due at once', schedule: HOURLY, now: '2024-05-01T10:30:00', dueNow: true, next: '2024-05-01T11:00:00' },
  {
    name: 'last snapshot after the most recent tick: not due, next tick',
    schedule: HOURLY,
    last: '2024-05-01T10:05:00',
    now: '2024-05-01T10:30:00',
    dueNow: false,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'last snapshot exactly on the most recent tick covers it',
    schedule: HOURLY,
    last: '2024-05-01T10:00:00',
    now: '2024-05-01T10:59:59',
    dueNow: false,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'one tick missed while down: due',
    schedule: HOURLY,
    last: '2024-05-01T09:30:00',
    now: '2024-05-01T10:30:00',
    dueNow: true,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'three days of ticks missed: still just due (one catch-up)',
    schedule: HOURLY,
    last: '2024-04-28T09:30:00',
    now: '2024-05-01T10:30:00',
    dueNow: true,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'now exactly on a tick: due, next is the following tick',
    schedule: HOURLY,
    last: '2024-05-01T09:30:00',
    now: '2024-05-01T10:00:00',
    dueNow: true,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'last snapshot in the future (clock skew): not due',
    schedule: HOURLY,
    last: '2024-05-01T12:00:00',
    now: '2024-05-01T10:30:00',
    dueNow: false,
    next: '2024-05-01T11:00:00',
  },
  {
    name: 'daily schedule, snapshot taken today after the tick',
    schedule: '30 2 * * *',
    last: '2024-05-01T02:31:00',
    now: '2024-05-01T20:00:00',
    dueNow: false,
    next: '2024-05-02T02:30:00',
  },
  {
    name: 'daily schedule, yesterday\'s snapshot and today\'s tick missed',
    schedule: '30 2 * * *',
    last: '2024-04-30T02:31:00',
    now: '2024-05-01T20:00:00',
    dueNow: true,
    next: '2024-05-02T02:30:00',
  },
  {
    name: '@daily nickname',
    schedule: '@daily',
    last: '2024-05-01T00:00:05',
    now: '2024-05-01T23:00:00',
    dueNow: false,
    next: '2024-05-02T00:00:00',
  },
];

for (const c of cases) {
  test(`decideFullSnapshot: ${c.name}`, () => {
    const decision = decideFullSnapshot(c.schedule, c.last === undefined ? undefined : at(c.last), at(c.now));
    assert.deepEqual(decision, { dueNow: c.dueNow, next: at(c.next) });
  });
}

test('decideFullSnapshot: after a long outage the catch-up happens ONCE, then the schedule resumes', () => {
  // Down from 00:10 to 05:20: five hourly ticks (01:00..05:00) were missed.
  let last: Date | undefined = at('2024-05-01T00:10:00');
  const snapshots: string[] = [];
  // Reconcile every minute from 05:20 to 07:10; a due decision takes a snapshot at that minute.
  for (let t = at('2024-05-01T05:20:00').getTime(); t <= at('2024-05-01T07:10:00').getTime(); t += 60_000) {
    const now = new Date(t);
    if (decideFullSnapshot(HOURLY, last, now).dueNow) {
      last = now;
      snapshots.push(now.toISOString());
    }
  }
  assert.deepEqual(snapshots, ['2024-05-01T05:20:00.000Z', '2024-05-01T06:00:00.000Z', '2024-05-01T07:00:00.000Z']);
});

test('decideFullSnapshot: a schedule that never fires is a RangeError', () => {
  assert.throws(() => decideFullSnapshot('0 0 31 2 *', undefined, at('2024-05-01T00:00:00')), {
    name: 'RangeError',
    message: 'cron expression "0 0 31 2 *" never fires',
  });
  assert.throws(() => nextScheduledRun('0 0 31 2 *', at('2024-05-01T00:00:00')), {
    name: 'RangeError',
    message: 'cron expression "0 0 31 2 *" never fires',
  });
});

test('schedules are UTC whatever the process time zone is', () => {
  const saved = process.env.TZ;
  process.env.TZ = 'Asia/Kolkata'; // UTC+5:30: a local-time cron would fire 5.5 hours early
  try {
    assert.equal(nextScheduledRun('0 0 * * *', at('2024-05-01T12:00:00')).toISOString(), '2024-05-02T00:00:00.000Z');
    assert.equal(decideFullSnapshot('0 0 * * *', at('2024-05-01T12:00:00'), at('2024-05-01T20:00:00')).next.toISOString(), '2024-05-02T00:00:00.000Z');
    assert.equal(decideFullSnapshot('0 0 * * *', at('2024-05-01T12:00:00'), at('2024-05-01T20:00:00')).dueNow, false);
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});

const retryCases: Array<{ failures: number; want: number }> = [
  { failures: -3, want: 5_000 },
  { failures: 0, want: 5_000 },
  { failures: 1, want: 5_000 },
  { failures: 2, want: 10_000 },
  { failures: 3, want: 20_000 },
  { failures: 4, want: 40_000 },
  { failures: 5, want: 80_000 },
  { failures: 6, want: 160_000 },
  // 320 s would exceed the 5 min cap.
  { failures: 7, want: 300_000 },
  { failures: 11, want: 300_000 },
  { failures: 1_000, want: 300_000 },
];

for (const c of retryCases) {
  test(`retryDelayMs(${c.failures}) = ${c.want}`, () => {
    assert.equal(retryDelayMs(c.failures), c.want);
  });
}

test('retryDelayMs never decreases as failures grow', () => {
  let previous = 0;
  for (let failures = 0; failures <= 50; failures++) {
    const delay = retryDelayMs(failures);
    assert.ok(delay >= previous, `failures=${failures}`);
    previous = delay;
  }
});

test('longestScheduleGapMs: the widest gap between runs (weekends, months), what staleness compares with', () => {
  const from = new Date('2026-01-05T00:00:00Z'); // a Monday
  const cases: Array<[schedule: string, hours: number]> = [
    ['0 */1 * * *', 1],
    ['@daily', 24],
    ['30 3 * * 1-5', 72], // Friday 03:30 to Monday 03:30
    ['0 */6 * * *', 6],
  ];
  for (const [schedule, hours] of cases) assert.equal(longestScheduleGapMs(schedule, from) / 3_600_000, hours, schedule);
});

test('deltaChainTooLong: a full snapshot is due only once the chain passes the bound', () => {
  const cases: Array<[replay: number | undefined, max: number, due: boolean]> = [
    [undefined, 50, false], // nothing known yet (no snapshot, no listing)
    [0, 50, false],
    [49, 50, false],
    [50, 50, false], // at the bound: a restore replays exactly the bound
    [51, 50, true],
    [2_000_000, 1_000_000, true],
  ];
  for (const [replay, max, due] of cases) assert.equal(deltaChainTooLong(replay, max), due, `replay ${replay}, max ${max}`);
});
