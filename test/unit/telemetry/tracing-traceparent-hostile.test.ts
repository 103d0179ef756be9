import { isSpanContextValid, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sampledFlag } from '../../../src/telemetry/tracing';

// A Check's sampling decision comes from the caller's trace context, and the span continues that context:
// both must read the same header. A traceparent that W3C Trace Context §3.2 calls invalid (version ff,
// an all-zero trace-id or parent-id, a version-00 header with more after its flags) is not continued by
// the propagator, so it must not decide either: B3 or the configured ratio decides (§3.2.4).
const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';
const ZT = '0'.repeat(32);
const ZS = '0'.repeat(16);

describe('sampledFlag: only a traceparent the propagator continues decides', () => {
  it.each<{ name: string; headers: Record<string, string>; want: boolean | null }>([
    {
      name: 'all-zero trace-id, flags 01, B3 says not sampled: B3 decides',
      headers: { traceparent: `00-${ZT}-${S}-01`, 'x-b3-sampled': '0' },
      want: false,
    },
    {
      name: 'all-zero parent-id, flags 00, B3 says sampled: B3 decides',
      headers: { traceparent: `00-${T}-${ZS}-00`, b3: `${T}-${S}-1` },
      want: true,
    },
    { name: 'version ff, flags 01: no decision', headers: { traceparent: `ff-${T}-${S}-01` }, want: null },
    { name: 'version 00 with a fifth field: no decision', headers: { traceparent: `00-${T}-${S}-01-extra` }, want: null },
    { name: 'flags followed by junk: no decision', headers: { traceparent: `00-${T}-${S}-01junk` }, want: null },
    { name: 'a later version with a fifth field: its flags', headers: { traceparent: `01-${T}-${S}-01-extra` }, want: true },
    { name: 'one leading space (the propagator trims it): its flags', headers: { traceparent: ` 00-${T}-${S}-01` }, want: true },
    { name: 'a valid header, not sampled', headers: { traceparent: `00-${T}-${S}-00` }, want: false },
    { name: 'a traceparent of 1 MiB: no decision', headers: { traceparent: `00-${T}-${S}-01-${'x'.repeat(1 << 20)}` }, want: null },
  ])('$name', ({ headers, want }) => {
    expect(sampledFlag(headers)).toBe(want);
  });

  it('decides exactly for the traceparents the W3C propagator turns into a valid parent, with its sampled bit', () => {
    const propagator = new W3CTraceContextPropagator();
    const getter = { keys: (c: Record<string, string>) => Object.keys(c), get: (c: Record<string, string>, k: string) => c[k] };
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
    const field = (n: number) => fc.oneof(hex(n), fc.constant('0'.repeat(n)), fc.constant('f'.repeat(n)), fc.string({ maxLength: n + 1 }));
    const header = fc
      .tuple(
        fc.constantFrom('', ' ', '\t'),
        field(2),
        field(32),
        field(16),
        field(2),
        fc.oneof(fc.constant(''), fc.string({ maxLength: 6 })),
      )
      .map(([lead, v, t, p, f, tail]) => `${lead}${v}-${t}-${p}-${f}${tail}`);
    fc.assert(
      fc.property(header, (traceparent) => {
        const ctx = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, { traceparent }, getter));
        const continued = ctx !== undefined && isSpanContextValid(ctx);
        const want = continued ? (ctx.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED : null;
        expect(sampledFlag({ traceparent })).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});
