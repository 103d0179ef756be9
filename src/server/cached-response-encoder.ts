import type { Decision } from '../decision/decision';
import { isSharedResult, type PolicyResult } from '../policy/policy-result';
import { decisionToCheckResponse, type ResponseOptions } from './check-response';
import { encodeCheckResponseMessage } from './check-response-encoder';

/**
 * Encodes a decision as the framed CheckResponse from templates: every response of one shape is the same
 * bytes except its own decision_id, so those bytes are encoded once into a template, and each answer copies
 * the template and writes its id in place. Two kinds of template:
 * - a decision answered from the decision cache carries the cached PolicyResult object itself, and an
 *   evaluated one may carry its engine's shared answer (policy-result.ts, shareResult): one template per
 *   such object, keyed by it (an evicted entry's template goes with it);
 * - an evaluated result that adds nothing to the response (no headers, query changes, metadata or body), and a refusal
 *   with no result, are fixed by allowed / reason / HTTP status / dry run alone: one template per such shape,
 *   a few in all (at most MAX_SHAPES), whichever engine decided.
 * Everything else (and any decision a template does not fit) is encoded afresh.
 */
export class CachedResponseEncoder {
  private readonly byResult = new WeakMap<PolicyResult, Template | null>();
  private readonly byShape = new Map<string, Template | null>();

  constructor(private readonly options: ResponseOptions) {}

  encode(decision: Decision): Buffer {
    const result = decision.result;
    if (decision.id.length !== ID_LENGTH || decision.parseError !== undefined) return this.fresh(decision);
    // A hit, or an engine's shared answer, looks its template up by the result object: no key to build.
    if (result !== undefined && (decision.cached || isSharedResult(result))) return this.fromTemplate(this.byResult, result, decision);
    if (result !== undefined && !addsNothing(result)) return this.fresh(decision);
    const key = `${result !== undefined}|${decision.allowed}|${decision.reason}|${decision.httpStatus}|${decision.dryRun === true}`;
    if (this.byShape.size >= MAX_SHAPES && !this.byShape.has(key)) return this.fresh(decision);
    return this.fromTemplate(this.byShape, key, decision);
  }

  /** The decision from its template, built on first use (null: the decision's bytes do not fit a template). */
  private fromTemplate<K>(templates: TemplateStore<K>, key: K, decision: Decision): Buffer {
    let template = templates.get(key);
    if (template === undefined) {
      template = buildTemplate(decision, (d) => this.fresh(d));
      templates.set(key, template);
    }
    if (template === null || !sameShape(template, decision)) return this.fresh(decision);
    // TypedArray set and a loop over the id's 36 ASCII characters: Buffer#copy and #write each go through
    // argument handling and a native call for a few dozen bytes.
    const out = Buffer.allocUnsafe(template.bytes.length);
    out.set(template.bytes);
    const id = decision.id;
    for (let i = 0, at = template.idOffset; i < ID_LENGTH; i++) out[at + i] = id.charCodeAt(i);
    return out;
  }

  private fresh(decision: Decision): Buffer {
    return encodeCheckResponseMessage(decisionToCheckResponse(decision, this.options));
  }
}

/** What both template maps offer (a WeakMap by result object, a Map by shape key). */
interface TemplateStore<K> {
  get(key: K): Template | null | undefined;
  set(key: K, template: Template | null): unknown;
}

/** Shape templates kept; a policy choosing ever new deny statuses gets fresh encodings past this. */
const MAX_SHAPES = 64;

/** Nothing of the result reaches the response but allowed/status (decisionToCheckResponse). */
function addsNothing(r: PolicyResult): boolean {
  return (
    r.headers.length === 0 &&
    r.responseHeadersToAdd.length === 0 &&
    r.requestHeadersToRemove.length === 0 &&
    r.queryParametersToSet.length === 0 &&
    r.queryParametersToRemove.length === 0 &&
    r.dynamicMetadata === undefined &&
    (r.body === undefined || r.body === '')
  );
}

/** decision_id is a UUID (decision-id.ts; checked to be 36 characters above): 36 ASCII bytes on the wire. */
const ID_LENGTH = 36;
const PROBE_A = '00000000-0000-4000-8000-000000000000';
const PROBE_B = 'ffffffff-ffff-4fff-bfff-ffffffffffff';

interface Template {
  bytes: Buffer;
  idOffset: number;
  // The decision fields besides the result that shape the response.
  allowed: boolean;
  reason: Decision['reason'];
  httpStatus: number;
  dryRun: boolean;
  parseError: string | undefined;
}

/**
 * Encodes the decision with two different probe ids: the template is valid only when the two encodings
 * differ in exactly the probe's 36 bytes (so the id occurs once, and nothing else depends on it).
 */
function buildTemplate(decision: Decision, encode: (d: Decision) => Buffer): Template | null {
  const a = encode({ ...decision, id: PROBE_A });
  const b = encode({ ...decision, id: PROBE_B });
  const at = a.indexOf(PROBE_A, 0, 'latin1');
  if (at < 0 || a.length !== b.length || b.indexOf(PROBE_B, 0, 'latin1') !== at) return null;
  const end = at + ID_LENGTH;
  if (!a.subarray(0, at).equals(b.subarray(0, at)) || !a.subarray(end).equals(b.subarray(end))) return null;
  return {
    bytes: a,
    idOffset: at,
    allowed: decision.allowed,
    reason: decision.reason,
    httpStatus: decision.httpStatus,
    dryRun: decision.dryRun === true,
    parseError: decision.parseError,
  };
}

function sameShape(t: Template, d: Decision): boolean {
  return (
    t.allowed === d.allowed &&
    t.reason === d.reason &&
    t.httpStatus === d.httpStatus &&
    t.dryRun === (d.dryRun === true) &&
    t.parseError === d.parseError
  );
}
