import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assessFreshness, type FreshnessInputs } from '../../src/engine/freshness.js';

const t = (iso: string): Date => new Date(iso);
const HOURLY = '0 * * * *';
const MINUTE = 60_000;

test('assessFreshness (table): etcd-druid rules, full older than two intervals, deltas not current for three periods', () => {
  const cases: Array<{ name: string; in: Omit<FreshnessInputs, 'schedule' | 'deltaPeriodMs'> & Partial<FreshnessInputs>; fresh: boolean; reason: string; staleAt?: string; message?: RegExp }> = [
    {
      name: 'snapshot on the last tick, deltas current',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), deltasCurrentTime: t('2026-01-01T10:29:50Z'), now: t('2026-01-01T10:30:00Z') },
      fresh: true,
      reason: 'BackupsFresh',
      staleAt: '2026-01-01T10:30:50.000Z', // three 20 s periods after the deltas were current
    },
    {
      name: 'one tick missed is still fresh (a snapshot may be running or retrying)',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), deltaPeriodMs: 0, now: t('2026-01-01T11:59:59Z') },
      fresh: true,
      reason: 'BackupsFresh',
      staleAt: '2026-01-01T12:00:00.000Z',
    },
    {
      name: 'two ticks passed without a newer full snapshot',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), deltaPeriodMs: 0, now: t('2026-01-01T12:00:00Z') },
      fresh: false,
      reason: 'FullSnapshotStale',
      message: /newest full snapshot \(2026-01-01T10:00:00Z\) is older than 2 intervals of the schedule "0 \* \* \* \*": no full snapshot since 2026-01-01T12:00:00Z/,
    },
    {
      name: 'a snapshot taken just after a tick gets two whole ticks',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:05Z'), deltaPeriodMs: 0, now: t('2026-01-01T11:30:00Z') },
      fresh: true,
      reason: 'BackupsFresh',
      staleAt: '2026-01-01T12:00:00.000Z',
    },
    {
      name: 'deltas not current for three periods',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), deltasCurrentTime: t('2026-01-01T10:10:00Z'), now: t('2026-01-01T10:11:00Z') },
      fresh: false,
      reason: 'DeltasStale',
      message: /delta archive last advanced or was complete at 2026-01-01T10:10:00Z, more than 3 delta periods \(20s each\) ago/,
    },
    {
      name: 'no delta poll completed since the worker started',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), since: t('2026-01-01T10:20:00Z'), now: t('2026-01-01T10:21:00Z') },
      fresh: false,
      reason: 'DeltasStale',
      message: /has not advanced or been complete since the worker started at 2026-01-01T10:20:00Z/,
    },
    {
      name: 'delta rule not applied without a reference (runner: pod)',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), now: t('2026-01-01T10:30:00Z') },
      fresh: true,
      reason: 'BackupsFresh',
      staleAt: '2026-01-01T12:00:00.000Z',
    },
    {
      name: 'deltas disabled: only the full rule',
      in: { lastFullSnapshotTime: t('2026-01-01T10:00:00Z'), deltaPeriodMs: 0, deltasCurrentTime: t('2026-01-01T09:00:00Z'), now: t('2026-01-01T10:30:00Z') },
      fresh: true,
      reason: 'BackupsFresh',
      staleAt: '2026-01-01T12:00:00.000Z',
    },
    {
      name: 'no full snapshot: nothing to judge it by',
      in: { deltaPeriodMs: 0, now: t('2026-01-01T10:30:00Z') },
      fresh: true,
      reason: 'BackupsFresh',
    },
    {
      name: 'a stale full snapshot is reported before stale deltas',
      in: { lastFullSnapshotTime: t('2026-01-01T08:00:00Z'), deltasCurrentTime: t('2026-01-01T09:00:00Z'), now: t('2026-01-01T10:30:00Z') },
      fresh: false,
      reason: 'FullSnapshotStale',
    },
    {
      name: 'an irregular schedule counts its own ticks (weekdays at 02:00)',
      in: { schedule: '0 2 * * 1-5', lastFullSnapshotTime: t('2026-01-02T02:00:00Z'), deltaPeriodMs: 0, now: t('2026-01-05T12:00:00Z') },
      fresh: true, // Fri 02:00, then Mon 02:00 and Tue 02:00
      reason: 'BackupsFresh',
      staleAt: '2026-01-06T02:00:00.000Z',
    },
  ];
  for (const c of cases) {
    const result = assessFreshness({ schedule: HOURLY, deltaPeriodMs: MINUTE / 3, ...c.in });
    assert.equal(result.fresh, c.fresh, c.name);
    assert.equal(result.reason, c.reason, c.name);
    assert.equal(result.staleAt?.toISOString(), c.staleAt, `${c.name}: staleAt`);
    if (c.message) assert.match(result.message, c.message, c.name);
  }
});
