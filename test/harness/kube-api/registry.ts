// Which resources are served right now: the builtins plus every served version of every stored CRD.
import { BUILTINS, CRD_DEF, defsFromCrd, type ResourceDef } from './resources.js';
import type { Store } from './store.js';

export class Registry {
  private crdDefs: ResourceDef[] | undefined;

  constructor(private readonly store: Store) {
    store.subscribe((ev) => {
      if (ev.storageKey === CRD_DEF.storageKey) this.crdDefs = undefined;
    });
  }

  all(): ResourceDef[] {
    if (!this.crdDefs) {
      this.crdDefs = [];
      for (const crd of this.store.list(CRD_DEF.storageKey)) {
        try {
          this.crdDefs.push(...defsFromCrd(crd));
        } catch {
          // A CRD whose schema no longer compiles is skipped rather than breaking discovery.
        }
      }
    }
    return [...BUILTINS, ...this.crdDefs];
  }

  find(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.all().find((d) => d.group === group && d.version === version && d.plural === plural);
  }

  /** group -> versions, excluding the legacy core group. */
  groups(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const d of this.all()) {
      if (!d.group) continue;
      const vs = m.get(d.group) ?? [];
      if (!vs.includes(d.version)) vs.push(d.version);
      m.set(d.group, vs);
    }
    return m;
  }

  inGroupVersion(group: string, version: string): ResourceDef[] {
    return this.all().filter((d) => d.group === group && d.version === version);
  }
}
