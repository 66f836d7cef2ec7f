/**
 * A steady write load on etcd for the memory benches: `bytesPerSecond` of values for `seconds`, issued
 * on a clock (a slow put does not slow the schedule) with at most `maxInFlight` requests outstanding,
 * so when etcd cannot take the rate the load falls behind instead of queueing without bound: the
 * achieved rate is reported and is what the benches print.
 *
 * Small values go `valuesPerTxn` to a txn (one revision): etcd on a shared 2-core machine takes a few
 * thousand requests per second, far from 20 MB/s of 1 kB puts, and a Kubernetes apiserver's writes
 * are not one-per-revision either.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';

export interface WriteLoad {
  bytesPerSecond: number;
  valueBytes: number;
  seconds: number;
  /** Values per request (one revision); default 1. */
  valuesPerTxn?: number;
  /** Distinct keys cycled through (etcd keeps every revision either way); default 5000. */
  keys?: number;
  /** Default 32 requests. */
  maxInFlight?: number;
  /** Key prefix; default `load/`. */
  prefix?: string;
}

export interface WriteLoadResult {
  bytes: number;
  requests: number;
  seconds: number;
  /** Achieved value bytes per second (until the last request completed). */
  bytesPerSecond: number;
}

export async function writeAtRate(client: Etcd3, load: WriteLoad): Promise<WriteLoadResult> {
  const perTxn = load.valuesPerTxn ?? 1;
  const keys = load.keys ?? 5000;
  const maxInFlight = load.maxInFlight ?? 32;
  const prefix = load.prefix ?? 'load/';
  // A few random values reused: content does not matter to the backup, generating it would cost CPU.
  const values = Array.from({ length: 8 }, () => randomBytes(load.valueBytes));
  const requestBytes = load.valueBytes * perTxn;
  const start = Date.now();
  const end = start + load.seconds * 1000;
  const inflight = new Set<Promise<unknown>>();
  let requests = 0;
  let next = 0;
  const send = (): Promise<unknown> => {
    if (perTxn === 1) {
      const i = next++;
      return client.put(`${prefix}${i % keys}`).value(values[i % values.length]!).exec();
    }
    // Distinct keys within one txn (etcd refuses a key twice in a txn).
    const success = Array.from({ length: perTxn }, () => {
      const i = next++;
      return { request_put: { key: Buffer.from(`${prefix}${i % keys}`), value: values[i % values.length]! } };
    });
    return client.kv.txn({ compare: [], success, failure: [] });
  };
  while (Date.now() < end) {
    const due = Math.floor((((Date.now() - start) / 1000) * load.bytesPerSecond) / requestBytes) + 1;
    while (requests < due && inflight.size < maxInFlight) {
      const p = send();
      requests++;
      inflight.add(p);
      void p.finally(() => inflight.delete(p)).catch(() => undefined);
    }
    if (inflight.size >= maxInFlight) await Promise.race(inflight);
    else await sleep(Math.min(20, Math.max(1, end - Date.now())));
  }
  await Promise.all(inflight);
  const seconds = (Date.now() - start) / 1000;
  const bytes = requests * requestBytes;
  return { bytes, requests, seconds, bytesPerSecond: bytes / seconds };
}
