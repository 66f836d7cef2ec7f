/**
 * Memory and CPU of a live process and its descendants, read from /proc (Linux only).
 *
 * - RSS is VmRSS from /proc/<pid>/status. Summed over a tree it counts shared pages (the node
 *   binary, shared libraries) once per process, so it overstates what the tree costs the machine.
 * - PSS is Pss from /proc/<pid>/smaps_rollup: shared pages split between the processes that map
 *   them, so a tree's PSS sum is its fair share of physical memory.
 * - CPU is utime + stime from /proc/<pid>/stat, in clock ticks (USER_HZ, 100 on Linux).
 */
import { readdir, readFile } from 'node:fs/promises';
import { procKbField } from './proc-status.js';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux this runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcessSample {
  pid: number;
  rssBytes: number;
  pssBytes: number;
  /** utime + stime so far, in seconds. */
  cpuSeconds: number;
}

/** `pid` and all its descendants that exist now (children of every thread, recursively). */
export async function processTree(pid: number): Promise<number[]> {
  const out: number[] = [];
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    out.push(next);
    // A child is listed under the thread that forked it, so read every thread's list.
    const tasks = await readdir(`/proc/${next}/task`).catch(() => [] as string[]);
    for (const tid of tasks) {
      const text = await readFile(`/proc/${next}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const child of text.trim().split(/\s+/)) if (child) pending.push(Number(child));
    }
  }
  return out;
}


/** One process's RSS, PSS and CPU time, or undefined if it has gone. */
export async function sampleProcess(pid: number): Promise<ProcessSample | undefined> {
  try {
    const [status, stat, rollup] = await Promise.all([
      readFile(`/proc/${pid}/status`, 'utf8'),
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => ''),
    ]);
    // The command name (field 2) may contain spaces: the fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the state (field 3).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return {
      pid,
      rssBytes: procKbField(status, 'VmRSS') ?? 0,
      pssBytes: procKbField(rollup, 'Pss') ?? 0,
      cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
    };
  } catch {
    return undefined;
  }
}

export async function sampleTree(pid: number): Promise<ProcessSample[]> {
  const samples = await Promise.all((await processTree(pid)).map(sampleProcess));
  return samples.filter((s): s is ProcessSample => s !== undefined);
}
