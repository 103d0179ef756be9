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
 * The bundle's entities, indexed once at load. For an entity a request names it keeps its *reach*: itself
 * and all its transitive ancestors that the bundle defines, computed on first use and kept. A decision then
 * passes only the reach of the request's principal and resource parents (cedar-wasm re-parses every entity
 * passed, per call, at a cost that grows steeply with their number), never the whole store. Computing every
 * reach at load cost ~0.6 s for 100,000 entities here, on the event loop; cycles are refused before this,
 * by Cedar's own entities check (engine-cedar-check.ts).
 */
export class CedarEntityStore {
  private readonly byKey = new Map<string, EntityJson>();
  private readonly reachByKey = new Map<string, readonly EntityJson[]>();
  private readonly reachCharsByKey = new Map<string, number>();
  /** Each entity's own size, so an ancestor shared by many reaches is measured once. */
  private readonly charsOf = new WeakMap<EntityJson, number>();

  /**
   * `maxReach`: a reach longer than this denies the request that names it (cedar-request.ts), so the walk
   * stops one past it: a deep or wide hierarchy costs a first request, and the kept reach, at most that much.
   */
  constructor(
    entities: readonly EntityJson[],
    private readonly maxReach = Infinity,
  ) {
    for (const e of entities) {
      const { type, id } = uidParts(e.uid);
      const key = entityKey(type, id);
      if (this.byKey.has(key)) throw new VerdictError('ERR_BUNDLE_INVALID', `entities.json defines ${type}::${JSON.stringify(id)} twice`);
      this.byKey.set(key, e);
    }
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

  /** The entity and every ancestor the store defines (empty when the store does not define it; cut one past maxReach). */
  reach(type: string, id: string): readonly EntityJson[] {
    const key = entityKey(type, id);
    let reach = this.reachByKey.get(key);
    if (reach === undefined) {
      // Only stored entities are kept: ids a request makes up never grow the map.
      if (!this.byKey.has(key)) return [];
      reach = this.computeReach(key);
      this.reachByKey.set(key, reach);
    }
    return reach;
  }

  /**
   * The size of a reach as JSON text, in characters, computed once per entity a request names (each entity
   * measured once): cedar-wasm re-parses every entity it is passed on every call (~25 ms a MiB here), so
   * the request side bounds it.
   */
  reachChars(type: string, id: string): number {
    const key = entityKey(type, id);
    let chars = this.reachCharsByKey.get(key);
    if (chars === undefined) {
      const reach = this.reach(type, id);
      if (reach.length === 0) return 0;
      chars = 0;
      for (const e of reach) {
        let own = this.charsOf.get(e);
        if (own === undefined) this.charsOf.set(e, (own = JSON.stringify(e).length));
        chars += own;
      }
      this.reachCharsByKey.set(key, chars);
    }
    return chars;
  }

  /** Parents as written in entities.json, for a derived entity that takes over a stored one's memberships. */
  parentsOf(type: string, id: string): readonly EntityUidJson[] {
    return this.byKey.get(entityKey(type, id))?.parents ?? [];
  }

  /** Iterative DFS over the stored entities (each visited once, so it ends on any graph). */
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
      if (out.length > this.maxReach) break;
      for (const p of e.parents) {
        const { type, id } = uidParts(p);
        stack.push(entityKey(type, id));
      }
    }
    return out;
  }
}
