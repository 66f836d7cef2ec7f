import type { SupervisorTimers } from '../../src/engine/supervisor.js';

interface FakeTimer {
  at: number;
  callback: () => void;
}

/**
 * A clock and timers that move only when the test says so: the supervisor's schedule (cron ticks,
 * retries) becomes deterministic while the work it starts (real etcd, real store) runs for real.
 * A timer fires when advanceTo() passes its due time, with the clock set to that time.
 */
export class FakeClock implements SupervisorTimers {
  private time: number;
  private readonly timers = new Map<number, FakeTimer>();
  private nextId = 1;

  constructor(start: Date) {
    this.time = start.getTime();
  }

  readonly now = (): Date => new Date(this.time);

  readonly setTimeout = (callback: () => void, delayMs: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, delayMs), callback });
    return id;
  };

  readonly clearTimeout = (handle: unknown): void => {
    if (typeof handle === 'number') this.timers.delete(handle);
  };

  /** Due times of the armed timers, soonest first. */
  pending(): Date[] {
    return [...this.timers.values()].map((t) => t.at).sort((a, b) => a - b).map((at) => new Date(at));
  }

  /** Moves the clock forward to `to`, firing every timer due by then in due order. */
  advanceTo(to: Date): void {
    if (to.getTime() < this.time) throw new RangeError(`the clock cannot go back from ${this.now().toISOString()} to ${to.toISOString()}`);
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= to.getTime()).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.timers.delete(id);
      this.time = timer.at;
      timer.callback();
    }
    this.time = to.getTime();
  }
}
