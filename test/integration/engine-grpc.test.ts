import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { loggedEvent } from '../helpers/logged-event';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir, type CheckClient } from '../helpers/verdict-harness';

// verdict serving the built Cedar and custom-engine bundles over real gRPC; the decision log (its real
// file sink) records the engine's explanation for every decision.

const ROOT = join(__dirname, '../..');

for (const name of ['cedar-default', 'mesh-acl']) {
  describe(`gRPC Check with the ${name} bundle`, () => {
    let verdict: RunningVerdict;
    let client: CheckClient;
    const logFile = join(tempDir('verdict-dlog-'), 'decisions.log');
    beforeAll(async () => {
      verdict = await startTestVerdict([
        `policy.bundle=${join(ROOT, 'dist/bundles', `${name}.tar.gz`)}`,
        `decisionLog.file.path=${logFile}`,
        'decisionLog.batch.delayMs=0',
      ]);
      client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    });
    afterAll(async () => {
      client.close();
      await verdict.stop();
    });

    it('allows a health probe and logs the determining rule', async () => {
      const res = await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' }));
      expect(res.status?.code ?? 0).toBe(0);
      const event = await loggedEvent(logFile, res.dynamicMetadata?.fields?.decision_id?.stringValue);
      expect(event).toMatchObject({
        engine: name === 'cedar-default' ? 'cedar' : 'wasm',
        allowed: true,
        result: { reasons: ['health-probes'] },
      });
    });

    it('denies /admin with 403, the reason code header, and the forbidding rule in the log', async () => {
      const res = await client.check(httpCheckRequest({ method: 'GET', path: '/admin/users' }));
      expect(res.status?.code).toBe(7);
      expect(Number(res.deniedResponse?.status?.code)).toBe(403);
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('DENIED_BY_POLICY');
      const event = await loggedEvent(logFile, res.dynamicMetadata?.fields?.decision_id?.stringValue);
      expect(event).toMatchObject({ allowed: false, reason: 'DENIED_BY_POLICY', result: { reasons: ['no-admin-over-mesh'] } });
    });

    it('denies an unmatched request with the no-match reason', async () => {
      const res = await client.check(httpCheckRequest({ method: 'DELETE', path: '/api/users/1' }));
      expect(res.status?.code).toBe(7);
      const event = await loggedEvent(logFile, res.dynamicMetadata?.fields?.decision_id?.stringValue);
      expect(event.result?.reasons).toEqual([name === 'cedar-default' ? 'no_policy_matched' : 'no_rule_matched']);
    });
  });
}
