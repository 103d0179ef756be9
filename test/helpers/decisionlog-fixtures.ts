import { randomUUID } from 'node:crypto';
import { systemClock } from '../../src/clock';
import type { Decision } from '../../src/decision/decision';
import { DecisionLogPipeline, type DecisionLogPipelineOptions } from '../../src/decisionlog/decision-log-pipeline';
import type { DecisionLogSink } from '../../src/decisionlog/decision-log-sink';
import type { DecisionRecord } from '../../src/decisionlog/decision-record';
import { DEFAULT_MASKS } from '../../src/decisionlog/event-mask';
import { EMPTY_RESULT_FIELDS } from '../../src/policy/policy-result';
import { createLogger } from '../../src/telemetry/logger';
import { Metrics } from '../../src/telemetry/metrics';

export const SECRETS = {
  authorization: 'Bearer tok-s3cret',
  cookie: 'session=c00kie-s3cret',
  certificate: '-----BEGIN%20CERTIFICATE-----cert-s3cret',
};

/** A record as the pipeline builds it for an HTTP request carrying secrets. */
export function recordWithSecrets(seq: number, allowed = true): { record: DecisionRecord; decision: Decision } {
  const id = randomUUID();
  const bundle = { name: 'default', revision: 'r1', sha256: 'a'.repeat(64) };
  const result = { allowed, ...EMPTY_RESULT_FIELDS };
  const record: DecisionRecord = {
    decision_id: id,
    timestamp: new Date().toISOString(),
    protocol: 'grpc',
    bundle,
    engine: 'opa',
    input: {
      attributes: {
        source: { principal: 'spiffe://e/a', certificate: SECRETS.certificate },
        request: {
          http: {
            method: 'GET',
            path: `/item/${seq}`,
            headers: { Authorization: SECRETS.authorization, cookie: SECRETS.cookie, 'x-seq': String(seq) },
          },
        },
      },
      parsed_path: ['item', String(seq)],
    },
    input_kind: 'full',
    result,
    allowed,
    http_status: allowed ? 200 : 403,
    reason: allowed ? 'ALLOWED' : 'DENIED_BY_POLICY',
    cached: false,
    fastpath: false,
    timings_ns: { total: 1000, eval: 500 },
  };
  return { record, decision: { id, allowed, reason: record.reason, httpStatus: record.http_status, result, bundle, engine: 'opa' } };
}

export function pipeline(
  sinks: DecisionLogSink[],
  spoolDir: string,
  overrides: Partial<DecisionLogPipelineOptions> = {},
): DecisionLogPipeline {
  return new DecisionLogPipeline({
    sinks,
    spoolDir,
    spoolMaxBytes: 64 * 1024 * 1024,
    spoolSegmentBytes: 64 * 1024,
    fsyncIntervalMs: 10,
    maxQueueBytes: 1024 * 1024,
    mask: DEFAULT_MASKS,
    event: { labels: { id: 'test', version: 'verdict' }, path: 'envoy/authz/allow' },
    shipper: { batchBytes: 16 * 1024, batchDelayMs: 5, minRetryDelayMs: 5, maxRetryDelayMs: 50 },
    drainOnCloseMs: 2000,
    metrics: new Metrics({ defaultMetrics: false }),
    logger: createLogger('silent'),
    clock: systemClock,
    ...overrides,
  });
}

export { waitFor } from './wait-for';
