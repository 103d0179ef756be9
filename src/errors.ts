/**
 * One error base with a closed set of stable codes. The code is the metric label, the log field
 * and the deny reason (`x-verdict-reason`). Bad data throws a VerdictError; programmer misuse throws TypeError.
 */

/** Every code verdict can emit, with the class of failure it belongs to. */
export const ERROR_CODES = {
  // request/: the CheckRequest itself is unusable
  ERR_REQUEST_TOO_LARGE: { kind: 'request', summary: 'request exceeds the configured size limit' },
  ERR_REQUEST_TOO_MANY_HEADERS: { kind: 'request', summary: 'request exceeds the configured header count' },
  ERR_REQUEST_MALFORMED: { kind: 'request', summary: 'CheckRequest does not decode, or lacks the attributes verdict needs' },
  ERR_REQUEST_TOO_DEEP: { kind: 'request', summary: 'input document nests deeper than the configured bound' },
  ERR_REQUEST_TOO_MANY_FIELDS: { kind: 'request', summary: 'CheckRequest carries more fields than the configured bound' },
  ERR_REQUEST_TOO_MANY_PARAMS: { kind: 'request', summary: 'query or form body has more parameters than the configured bound' },
  ERR_REQUEST_TIMEOUT: { kind: 'request', summary: 'the HTTP authz request did not arrive whole within httpAuthz.requestTimeoutMs' },
  ERR_REQUEST_PARSE: { kind: 'request', summary: 'request path or query does not parse (opa-envoy-plugin request_parse_error)' },
  ERR_REQUEST_BODY_PARSE: {
    kind: 'request',
    summary: 'declared JSON, form, multipart or gRPC body could not be parsed (request_parse_error)',
  },
  // identity/: SPIFFE verification (deny before policy)
  ERR_SPIFFE_ID_INVALID: { kind: 'identity', summary: 'not a valid SPIFFE ID' },
  ERR_SVID_MALFORMED: { kind: 'identity', summary: 'SVID could not be decoded' },
  ERR_SVID_EXPIRED: { kind: 'identity', summary: 'SVID is expired' },
  ERR_SVID_NOT_YET_VALID: { kind: 'identity', summary: 'SVID is not yet valid' },
  ERR_SVID_UNTRUSTED: { kind: 'identity', summary: 'SVID does not chain to a trusted bundle' },
  ERR_SVID_BAD_SAN: { kind: 'identity', summary: 'SVID must carry exactly one SPIFFE ID URI SAN' },
  ERR_SVID_BAD_KEY_USAGE: { kind: 'identity', summary: 'SVID key usage or CA flag violates the X509-SVID spec' },
  ERR_SVID_SIGNATURE: { kind: 'identity', summary: 'SVID signature does not verify' },
  ERR_SVID_PATH_LENGTH: { kind: 'identity', summary: "certificate path is longer than a CA's pathLenConstraint allows" },
  ERR_SVID_NAME_CONSTRAINT: { kind: 'identity', summary: "a certificate's names break a CA's name constraints" },
  ERR_SVID_CRITICAL_EXTENSION: { kind: 'identity', summary: 'a certificate on the path has a critical extension verdict does not process' },
  ERR_JWT_ALGORITHM: { kind: 'identity', summary: 'JWT-SVID uses an algorithm that is not allowed' },
  ERR_JWT_AUDIENCE: { kind: 'identity', summary: 'JWT-SVID audience does not match' },
  ERR_JWT_CLAIMS: { kind: 'identity', summary: 'JWT-SVID claims are missing or invalid' },
  ERR_JWT_KEY_UNKNOWN: { kind: 'identity', summary: 'JWT-SVID key id is not in the trust bundle' },
  ERR_BUNDLE_UNAVAILABLE: { kind: 'identity', summary: 'trust bundles are not available (not yet received, stale, or invalid)' },
  ERR_WORKLOAD_API: { kind: 'identity', summary: 'the SPIFFE Workload API call failed' },
  ERR_DELEGATED_IDENTITY_REFUSED: {
    kind: 'identity',
    summary: 'the SPIRE agent refused the Delegated Identity API (verdict is not an authorized delegate)',
  },
  ERR_DELEGATED_IDENTITY_STREAM: {
    kind: 'identity',
    summary: 'a Delegated Identity API stream failed or ended (agent unavailable, or another gRPC status)',
  },
  ERR_DELEGATED_IDENTITY_MALFORMED: { kind: 'identity', summary: 'the SPIRE agent sent a Delegated Identity update that does not parse' },
  // identity/oidc-*: OIDC / JWT tokens from identity.jwt.issuers (deny before policy, docs/tokens.md)
  ERR_TOKEN_MALFORMED: { kind: 'identity', summary: 'token is not a well-formed, bounded JWS compact JWT' },
  ERR_TOKEN_ALGORITHM: { kind: 'identity', summary: 'token algorithm is none or not in the issuer allow-list' },
  ERR_TOKEN_ISSUER: { kind: 'identity', summary: 'token issuer is not configured' },
  ERR_TOKEN_KEY_UNKNOWN: { kind: 'identity', summary: "token has no kid, or its kid is not in the issuer's JWK Set" },
  ERR_TOKEN_SIGNATURE: { kind: 'identity', summary: 'token signature does not verify' },
  ERR_TOKEN_AUDIENCE: { kind: 'identity', summary: 'token audience does not match' },
  ERR_TOKEN_EXPIRED: { kind: 'identity', summary: 'token is expired' },
  ERR_TOKEN_NOT_YET_VALID: { kind: 'identity', summary: 'token is not yet valid (nbf / iat in the future)' },
  ERR_TOKEN_CLAIMS: { kind: 'identity', summary: 'token claims are missing or invalid' },
  ERR_TOKEN_ACT_DEPTH: { kind: 'identity', summary: 'token delegation chain (act) is deeper than allowed' },
  ERR_TOKEN_JWKS: { kind: 'identity', summary: "the issuer's discovery document or JWK Set cannot be fetched or is invalid" },
  // tenancy/: which tenant's bundle decides (docs/tenancy.md)
  ERR_TENANT_UNKNOWN: { kind: 'tenant', summary: 'request names no configured tenant' },
  // policy/: bundles and engines
  ERR_BUNDLE_INVALID: { kind: 'bundle', summary: 'policy bundle is malformed' },
  ERR_BUNDLE_TOO_LARGE: { kind: 'bundle', summary: 'policy bundle exceeds a size bound' },
  ERR_BUNDLE_UNSAFE_PATH: { kind: 'bundle', summary: 'policy bundle has an unsafe tar entry' },
  ERR_BUNDLE_SIGNATURE: { kind: 'bundle', summary: 'policy bundle signature is missing or invalid' },
  ERR_BUNDLE_HASH_MISMATCH: { kind: 'bundle', summary: 'policy bundle sha256 differs from the pinned value' },
  ERR_BUNDLE_ENGINE: { kind: 'bundle', summary: 'policy bundle names an unknown engine or fails to instantiate' },
  // cache/: a bundle's declared decision-cache key
  ERR_CACHE_DECLARATION: { kind: 'bundle', summary: 'bundle cache declaration (metadata.verdict.cache) is malformed' },
  ERR_CACHE_KEY_OMITS_READ: { kind: 'bundle', summary: 'declared cache key omits input the policy reads' },
  ERR_CACHE_LINT: { kind: 'bundle', summary: 'the policy could not be analysed for its cache key' },
  ERR_BUNDLE_SCHEMA: { kind: 'bundle', summary: 'policy bundle does not validate against its schema' },
  ERR_ENGINE_IMPORTS: { kind: 'bundle', summary: 'custom wasm engine asks for imports; none are given' },
  ERR_BUNDLE_SELF_TEST: { kind: 'bundle', summary: 'policy bundle failed its evaluation self-test' },
  ERR_BUNDLE_REPLAY: { kind: 'bundle', summary: 'policy bundle is signed earlier than the active one (rollback)' },
  ERR_BUNDLE_SOURCE: { kind: 'bundle', summary: 'policy bundle source is unreachable or answered badly' },
  ERR_BUNDLE_FILE_TYPE: {
    kind: 'bundle',
    summary: 'a bundle path (watched, or given to a command), or a key or policy file read with it, is not a regular file (FIFO, device…)',
  },
  ERR_BUNDLE_LOAD_TIMEOUT: { kind: 'bundle', summary: 'a bundle load step (verify, instantiate, start, self-test) ran past its deadline' },
  ERR_BUNDLE_ROOTS: { kind: 'bundle', summary: 'bundle data or policy lies outside its manifest roots, or roots overlap' },
  ERR_POLICY_NOT_LOADED: { kind: 'policy', summary: 'no policy bundle is active' },
  ERR_POLICY_EVAL: { kind: 'policy', summary: 'policy evaluation failed' },
  ERR_POLICY_TIMEOUT: { kind: 'policy', summary: 'policy evaluation exceeded its time budget' },
  ERR_POLICY_RESULT: { kind: 'policy', summary: 'policy result has an invalid shape' },
  ERR_POLICY_UNDEFINED: { kind: 'policy', summary: 'policy decision is undefined' },
  ERR_RESPONSE_TOO_LARGE: { kind: 'policy', summary: 'the CheckResponse for this decision exceeds server.grpc.maxSendMessageBytes' },
  ERR_POLICY_INPUT: { kind: 'request', summary: 'the input document cannot be handed to the engine (too deep or too large)' },
  // fastpath/: the kernel path (never on the decision path: its failures switch it off, they do not deny)
  ERR_FASTPATH_UNAVAILABLE: { kind: 'fastpath', summary: 'kernel fast path cannot run here' },
  ERR_FASTPATH_WRITE: { kind: 'fastpath', summary: 'kernel verdict map write failed' },
  // kerneltelemetry/: observation only (never on the decision path)
  ERR_KERNEL_TELEMETRY_UNAVAILABLE: { kind: 'fastpath', summary: 'kernel telemetry cannot run here' },
  ERR_KERNEL_UNEXPLAINED_CONNECTION: { kind: 'fastpath', summary: 'a connection was established with no allow decision from verdict' },
  ERR_KERNEL_IDENTITY_AMBIGUOUS: {
    kind: 'fastpath',
    summary: 'processes of one workload cgroup hold different SPIFFE IDs: its traffic is attributed to unknown',
  },
  // decisionlog/: never on the decision path; counted and logged
  ERR_DECISIONLOG_SINK: { kind: 'decisionlog', summary: 'decision-log sink refused or failed a batch' },
  ERR_DECISIONLOG_SPOOL: { kind: 'decisionlog', summary: 'decision-log spool cannot be read or written' },
  ERR_DECISIONLOG_CHAIN: { kind: 'decisionlog', summary: 'decision-log hash chain is broken' },
  ERR_DECISIONLOG_FILE: {
    kind: 'decisionlog',
    summary: 'a decision-log file given to a tool cannot be read (missing, a directory, FIFO or device, or a read error)',
  },
  // server/: the gRPC call itself breaks the transport rules (PROTOCOL-HTTP2.md); refused with a gRPC status
  ERR_GRPC_CONTENT_TYPE: { kind: 'transport', summary: 'content-type is not application/grpc (HTTP 415)' },
  ERR_GRPC_UNIMPLEMENTED: { kind: 'transport', summary: 'unknown gRPC service or method' },
  ERR_GRPC_ENCODING: { kind: 'transport', summary: 'grpc-encoding not supported, or compressed flag without one' },
  ERR_GRPC_FRAME: { kind: 'transport', summary: 'Length-Prefixed-Message is malformed' },
  ERR_GRPC_NO_MESSAGE: { kind: 'transport', summary: 'unary call ended without a request message' },
  ERR_GRPC_TOO_MANY_MESSAGES: { kind: 'transport', summary: 'unary call carried more than one request message' },
  ERR_GRPC_TRUNCATED: { kind: 'transport', summary: 'stream ended inside a request message' },
  ERR_GRPC_TIMEOUT_HEADER: { kind: 'transport', summary: 'grpc-timeout header is malformed' },
  ERR_GRPC_DEADLINE: { kind: 'transport', summary: 'the call deadline (grpc-timeout) passed before the answer' },
  ERR_GRPC_BUSY: { kind: 'transport', summary: 'the process-wide request buffer budget, or the bound on open calls, is exhausted' },
  ERR_CONNECTION_STALLED: {
    kind: 'transport',
    summary:
      'a connection held a call open past server.transport.maxUnaryCallMs (gRPC) or httpAuthz.stalledResponseMs (HTTP), and was closed',
  },
  ERR_GRPC_RESET_FLOOD: {
    kind: 'transport',
    summary: 'a connection reset its calls before their answers faster than the bound (HTTP/2 Rapid Reset) and was closed',
  },
  // config
  ERR_CONFIG: { kind: 'config', summary: 'configuration is invalid' },
  ERR_LISTEN: { kind: 'config', summary: 'a listener cannot bind its address (in use, not permitted or not local)' },
  // anything unexpected on the decision path
  ERR_INTERNAL: { kind: 'internal', summary: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
export type ErrorKind = (typeof ERROR_CODES)[ErrorCode]['kind'];

export class VerdictError extends Error {
  readonly code: ErrorCode;
  override readonly name = 'VerdictError';
  /** The deny status this failure asks for (e.g. 401 for a bad JWT-SVID); else the kind's configured status. */
  readonly httpStatus: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; httpStatus?: number }) {
    super(message ?? ERROR_CODES[code].summary, options);
    this.code = code;
    this.httpStatus = options?.httpStatus;
  }

  get kind(): ErrorKind {
    return ERROR_CODES[this.code].kind;
  }
}

/**
 * `text` as an error message quotes it: at most `max` characters, "…" marking a cut (a key, a name or a
 * header's author may have made it any length).
 */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Any thrown value → a VerdictError; unknown failures become ERR_INTERNAL (deny on doubt). */
export function toVerdictError(err: unknown, fallback: ErrorCode = 'ERR_INTERNAL'): VerdictError {
  if (err instanceof VerdictError) return err;
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : String(err);
  return new VerdictError(fallback, message, { cause: err });
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
