import type { EntityJson, EntityUidJson } from '@cedar-policy/cedar-wasm/nodejs';
import { VerdictError } from '../errors';

/** `Type::"id"` → one string key (ids may hold any character; the type may not hold a NUL). */
export function entityKey(type: string, id: string): string {
  return `${type}\0${id}`;
}

function uidParts(uid: EntityUidJson): { type: string; id: string } {
  return '__entity' in uid ? uid.__entity : uid;
}

/**
 * The bundle's entities, indexed once at load. For every entity it keeps its *reach*: itself and all its
 * transitive ancestors that the bundle defines. A decision then passes only the reach of the request's
 * principal and resource parents (cedar-wasm re-parses every entity passed, per call, at a cost that grows
 * steeply with their number), never the whole store.
 */
export class CedarEntityStore {
  private readonly byKey = new Map<string, EntityJson>();
  private readonly reachByKey = new Map<string, readonly EntityJson[]>();

  constructor(entities: readonly EntityJson[]) {
    for (const e of entities) {
      const { type, id } = uidParts(e.uid);
      const key = entityKey(type, id);
      if (this.byKey.has(key)) throw new VerdictError('ERR_BUNDLE_INVALID', `entities.json defines ${type}::${JSON.stringify(id)} twice`);
      this.byKey.set(key, e);
    }
    for (const key of this.byKey.keys()) this.reachByKey.set(key, this.computeReach(key));
  }

  get size(): number {
    return this.byKey.size;
  }

  get(type: string, id: string): EntityJson | undefined {
    return this.byKey.get(entityKey(type, id));
  }

  has(type: string, id: string): boolean {
    return this.byKey.has(entityKey(type, id));
  }

  /** The entity and every ancestor the store defines (empty when the store does not define it). */
  reach(type: string, id: string): readonly EntityJson[] {
    return this.reachByKey.get(entityKey(type, id)) ?? [];
  }

  /** Parents as written in entities.json, for a derived entity that takes over a stored one's memberships. */
  parentsOf(type: string, id: string): readonly EntityUidJson[] {
    return this.byKey.get(entityKey(type, id))?.parents ?? [];
  }

  /** Iterative DFS; a cycle in the hierarchy is refused at load (Cedar forbids cycles too). */
  private computeReach(start: string): readonly EntityJson[] {
    const out: EntityJson[] = [];
    const seen = new Set<string>();
    const stack = [start];
    while (stack.length > 0) {
      const key = stack.pop() as string;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = this.byKey.get(key);
      if (!e) continue;
      out.push(e);
      for (const p of e.parents) {
        const { type, id } = uidParts(p);
        const pk = entityKey(type, id);
        if (pk === start)
          throw new VerdictError('ERR_BUNDLE_INVALID', `entity hierarchy has a cycle through ${type}::${JSON.stringify(id)}`);
        stack.push(pk);
      }
    }
    return out;
  }
}
