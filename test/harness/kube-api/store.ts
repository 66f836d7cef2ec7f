// Object storage with one global resourceVersion counter (like etcd's revision) and a bounded
// event history that watches replay from.
import { clone, type Obj } from './json.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface HistoryEvent {
  rv: number;
  type: EventType;
  storageKey: string;
  /** Object after the change (for DELETED: the last state, carrying the deletion's resourceVersion). */
  object: Obj;
  /** Object before the change, so selector-filtered watches can turn MODIFIED into ADDED/DELETED. */
  prev?: Obj;
}

/**
 * Everything a server holds. Pass it to a new server (same or other port) to simulate an apiserver
 * restart that keeps etcd's data: objects, resourceVersions and watch history survive.
 */
export interface KubeApiState {
  rv: number;
  /** storageKey -> "namespace/name" -> object (storage form). */
  objects: Map<string, Map<string, Obj>>;
  history: HistoryEvent[];
  /** Watches from a resourceVersion below this get 410 Gone. */
  compactedRv: number;
  historyLimit: number;
}

// Big enough for any test's burst of writes, small enough to keep memory trivial.
export const DEFAULT_HISTORY_LIMIT = 10_000;

export function newState(historyLimit = DEFAULT_HISTORY_LIMIT): KubeApiState {
  return { rv: 1, objects: new Map(), history: [], compactedRv: 0, historyLimit };
}

export type Listener = (ev: HistoryEvent) => void;

export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export class Store {
  private readonly listeners = new Set<Listener>();
  constructor(readonly state: KubeApiState) {}

  get rv(): number {
    return this.state.rv;
  }

  nextRv(): number {
    return ++this.state.rv;
  }

  private bucket(storageKey: string): Map<string, Obj> {
    let b = this.state.objects.get(storageKey);
    if (!b) {
      b = new Map();
      this.state.objects.set(storageKey, b);
    }
    return b;
  }

  get(storageKey: string, namespace: string, name: string): Obj | undefined {
    const o = this.state.objects.get(storageKey)?.get(objectKey(namespace, name));
    return o && clone(o);
  }

  /** Objects sorted by namespace/name, as etcd's key order returns them. */
  list(storageKey: string, namespace?: string): Obj[] {
    const b = this.state.objects.get(storageKey);
    if (!b) return [];
    const keys = [...b.keys()].filter((k) => namespace === undefined || k.startsWith(`${namespace}/`)).sort();
    return keys.map((k) => clone(b.get(k) as Obj));
  }

  /** Stores `obj` (whose metadata.resourceVersion the caller already set to `rv`) and emits the event. */
  put(storageKey: string, namespace: string, name: string, obj: Obj, rv: number, prev?: Obj): void {
    this.bucket(storageKey).set(objectKey(namespace, name), clone(obj));
    this.emit({ rv, type: prev ? 'MODIFIED' : 'ADDED', storageKey, object: clone(obj), prev: prev && clone(prev) });
  }

  remove(storageKey: string, namespace: string, name: string, last: Obj, rv: number): void {
    this.bucket(storageKey).delete(objectKey(namespace, name));
    this.emit({ rv, type: 'DELETED', storageKey, object: clone(last) });
  }

  private emit(ev: HistoryEvent): void {
    const h = this.state.history;
    h.push(ev);
    if (h.length > this.state.historyLimit) {
      const dropped = h.splice(0, h.length - this.state.historyLimit);
      this.state.compactedRv = Math.max(this.state.compactedRv, dropped[dropped.length - 1]?.rv ?? 0);
    }
    for (const l of this.listeners) l(ev);
  }

  /** Events after `rv`, or undefined when history no longer reaches back that far. */
  since(rv: number): HistoryEvent[] | undefined {
    if (rv < this.state.compactedRv) return undefined;
    return this.state.history.filter((e) => e.rv > rv);
  }

  compact(): void {
    this.state.history = [];
    this.state.compactedRv = this.state.rv;
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
