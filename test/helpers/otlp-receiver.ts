import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeOTLPTraceProtobuf, type OTLPJSONBody, type OTLPJSONValue } from './otlp-protobuf';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status?: { code?: number; message?: string };
  serviceName: string;
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;

function plain(v: OTLPJSONValue): unknown {
  return v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue);
}

/**
 * An OTLP/HTTP trace receiver (OTLP spec "OTLP/HTTP"): POST /v1/traces, JSON (what verdict sends) or binary
 * protobuf (what Envoy's OpenTelemetry tracer sends), answers 200.
 * Stands in for a collector: Jaeger would have to be built with go install (another long cold build on
 * this 2-core host), and this reads exactly what verdict sends.
 */
export async function startOTLPReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; stop(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const type = String(req.headers['content-type']);
      const json = type.includes('json');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !(json || type.includes('application/x-protobuf'))) {
        res.writeHead(415).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      const body = json ? (JSON.parse(raw.toString('utf8')) as OTLPJSONBody) : decodeOTLPTraceProtobuf(raw);
      for (const rs of body.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              ...s,
              serviceName: service,
              attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, plain(a.value)])),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * verdict config for tracing tests: export to the receiver quickly, trace only what the caller sampled
 * (sampleRatio 0, parent-based), no identity, and no decision cache so every Check evaluates (a cache hit
 * would have no evaluate span).
 */
export function tracedVerdictOverrides(receiverURL: string): string[] {
  return [
    'tracing.enabled=true',
    `tracing.otlpEndpoint=${receiverURL}`,
    'tracing.sampleRatio=0',
    'tracing.exportDelayMs=20',
    'identity.enabled=false',
    'cache.enabled=false',
  ];
}
