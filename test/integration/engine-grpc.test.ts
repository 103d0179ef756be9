import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamDecisionLog } from '../../src/decisionlog/decision-log-stream';
import type { RunningVerdict } from '../../src/main';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, type CheckClient } from '../helpers/verdict-harness';

// verdict serving the built Cedar and custom-engine bundles over real gRPC; the decision log (its real
// stream sink) records the engine's explanation for every decision.

const ROOT = join(__dirname, '../..');

for (const name of ['cedar-default', 'mesh-acl']) {
  describe(`gRPC Check with the ${name} bundle`, () => {
    let verdict: RunningVerdict;
    let client: CheckClient;
    const lines: Record<string, unknown>[] = [];
    beforeAll(async () => {
      const out = new PassThrough();
      out.on('data', (chunk: Buffer) => {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      });
      verdict = await startTestVerdict([`policy.bundle=${join(ROOT, 'dist/bundles', `${name}.tar.gz`)}`], {
        decisionLog: new StreamDecisionLog(out),
      });
      client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    });
    afterAll(async () => {
      client.close();
      await verdict.stop();
    });

    it('allows a health probe and logs the determining rule', async () => {
      const res = await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' }));
      expect(res.status?.code ?? 0).toBe(0);
      const last = lines.at(-1);
      expect(last).toMatchObject({ engine: name === 'cedar-default' ? 'cedar' : 'wasm', allowed: true, reasons: ['health-probes'] });
    });

    it('denies /admin with 403, the reason code header, and the forbidding rule in the log', async () => {
      const res = await client.check(httpCheckRequest({ method: 'GET', path: '/admin/users' }));
      expect(res.status?.code).toBe(7);
      expect(Number(res.deniedResponse?.status?.code)).toBe(403);
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('DENIED_BY_POLICY');
      expect(lines.at(-1)).toMatchObject({ allowed: false, reason: 'DENIED_BY_POLICY', reasons: ['no-admin-over-mesh'] });
    });

    it('denies an unmatched request with the no-match reason', async () => {
      const res = await client.check(httpCheckRequest({ method: 'DELETE', path: '/api/users/1' }));
      expect(res.status?.code).toBe(7);
      const reasons = (lines.at(-1) as { reasons?: string[] }).reasons;
      expect(reasons).toEqual([name === 'cedar-default' ? 'no_policy_matched' : 'no_rule_matched']);
    });
  });
}
