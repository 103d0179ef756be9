/** PROTOCOL-HTTP2.md "Timeout": TimeoutValue (1–8 ASCII digits) then one unit letter. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/**
 * The grpc-timeout header in milliseconds: undefined when absent (infinite, per the spec), NaN when
 * malformed (the call is refused). Sub-millisecond values round up so a deadline is never zero.
 */
export function parseGrpcTimeoutMs(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = typeof header === 'string' ? TIMEOUT.exec(header) : null;
  if (!m) return Number.NaN;
  return Math.ceil(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
}
