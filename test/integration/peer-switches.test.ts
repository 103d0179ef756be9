import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { loggedEvent } from '../helpers/logged-event';
import { recordingLogger } from '../helpers/recording-logger';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  httpCheckRequest,
  startTestVerdict,
  tempDir,
  type CheckClient,
} from '../helpers/verdict-harness';

// opa-envoy-plugin's switches under verdict's names (internal/internal.go Config), each over the real gRPC
// server with a real opa-built bundle and the real file decision-log sink; each case also runs with the
// switch at its default, so removing the switch fails it.

const POLICY = `package envoy.authz
import rego.v1

default parsed := false
parsed if { _ := input.parsed_body }
default truncated := false
truncated if { _ := input.truncated_body }

meta := {"parsed_body_present": parsed, "truncated_body_present": truncated}
big := concat("", [x | some i in numbers.range(1, 4096); x := "b"])

hdr := input.attributes.request.http.headers
kind := "pass" if hdr["x-pass"] == "yes"
else := "big" if hdr["x-big"] == "yes"
else := "broken" if hdr["x-broken"] == "yes"
else := "deny"

answers := {
  "deny": {"allowed": false, "http_status": 401, "body": "no", "headers": {"x-why": "nope"}, "dynamic_metadata": meta},
  "pass": {"allowed": true, "dynamic_metadata": meta},
  "big": {"allowed": false, "body": big},
  "broken": {"allowed": "not a boolean"},
}
allow := answers[kind]
`;

interface Served {
  client: CheckClient;
  verdict: RunningVerdict;
  logFile: string;
}

const running: Served[] = [];
let bundle: Promise<string> | undefined;

async function serve(...sets: string[]): Promise<Served> {
  bundle ??= buildTestBundle({ 'policy.rego': POLICY });
  const logFile = join(tempDir('verdict-switch-'), 'decisions.log');
  const verdict = await startTestVerdict([
    `policy.bundle=${await bundle}`,
    `decisionLog.file.path=${logFile}`,
    'decisionLog.batch.delayMs=0',
    'cache.enabled=false',
    ...sets,
  ]);
  const served = { client: checkClient(`127.0.0.1:${verdict.grpcPort}`), verdict, logFile };
  running.push(served);
  return served;
}

afterAll(async () => {
  for (const s of running) {
    s.client.close();
    await s.verdict.stop();
  }
});

const denied = () => httpCheckRequest({ path: '/x' });
const decisionId = (res: { dynamicMetadata?: { fields?: Record<string, { stringValue?: string }> } }) =>
  res.dynamicMetadata?.fields?.decision_id?.stringValue;

describe('decision.dryRun (peer: dry-run)', () => {
  it('a policy deny is answered with a bare allow; the log keeps the real deny and dry_run', async () => {
    const { client, logFile } = await serve('decision.dryRun=true');
    const res = await client.check(denied());
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.okResponse).toBeDefined();
    expect(res.okResponse?.headers ?? []).toEqual([]);
    expect(res.deniedResponse).toBeUndefined();
    const event = await loggedEvent(logFile, decisionId(res));
    expect(event).toMatchObject({ allowed: false, reason: 'DENIED_BY_POLICY', http_status: 401, dry_run: true });
    expect(event.result).toMatchObject({ allowed: false, body: 'no', http_status: 401 });
  });

  it('an error still denies under dry run (the peer fails such a call too)', async () => {
    const { client, logFile } = await serve('decision.dryRun=true');
    const res = await client.check(httpCheckRequest({ path: '/x', headers: { 'x-broken': 'yes' } }));
    expect(res.status?.code).toBe(7);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_RESULT');
    expect((await loggedEvent(logFile, decisionId(res))).dry_run).toBeUndefined();
  });

  it('off (default): the same request is denied and not marked', async () => {
    const { client, logFile } = await serve();
    const res = await client.check(denied());
    expect(res.deniedResponse?.status?.code).toBe(401);
    expect((await loggedEvent(logFile, decisionId(res))).dry_run).toBeUndefined();
  });
});

describe('decision.exposeReason (verdict: reason header and status message on denies)', () => {
  const cases = [
    { name: 'on (default): header and message carry the reason', sets: [], header: 'DENIED_BY_POLICY', message: 'DENIED_BY_POLICY' },
    { name: 'off: neither, the peer’s exact deny', sets: ['decision.exposeReason=false'], header: undefined, message: '' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { client } = await serve(...c.sets);
      const res = await client.check(denied());
      expect(res.deniedResponse?.status?.code).toBe(401);
      expect(headerValue(res.deniedResponse?.headers, 'x-why')).toBe('nope');
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe(c.header);
      expect(res.status?.message ?? '').toBe(c.message);
    });
  }
});

describe('policy.skipRequestBodyParse (peer: skip-request-body-parse)', () => {
  const jsonBody = (body: string) =>
    httpCheckRequest({ method: 'POST', path: '/x', headers: { 'x-pass': 'yes', 'content-type': 'application/json' }, body });
  const cases = [
    { name: 'off (default): parsed_body and truncated_body are in the input', sets: [], present: true },
    {
      name: 'on: neither key is in the input (envoyauth/request.go RequestToInput)',
      sets: ['policy.skipRequestBodyParse=true'],
      present: false,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { client } = await serve(...c.sets);
      const res = await client.check(jsonBody('{"a":1}'));
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.dynamicMetadata?.fields?.parsed_body_present?.boolValue).toBe(c.present);
      expect(res.dynamicMetadata?.fields?.truncated_body_present?.boolValue).toBe(c.present);
    });
  }

  it('on: a body that does not parse is not an error (it is never parsed)', async () => {
    const { client } = await serve('policy.skipRequestBodyParse=true');
    const res = await client.check(jsonBody('{not json'));
    expect(res.status?.code ?? 0).toBe(0);
    const strict = await (await serve()).client.check(jsonBody('{not json'));
    expect(headerValue(strict.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_BODY_PARSE');
  });
});

describe('server.grpc.maxSendMessageBytes (peer: grpc-max-send-msg-size)', () => {
  const big = () => httpCheckRequest({ path: '/x', headers: { 'x-big': 'yes' } });
  it('a CheckResponse over the bound is replaced by a coded deny', async () => {
    const { client } = await serve('server.grpc.maxSendMessageBytes=2048');
    const res = await client.check(big());
    expect(res.status?.code).toBe(7);
    expect(res.deniedResponse?.status?.code).toBe(500);
    expect(res.deniedResponse?.body ?? '').toBe('');
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_RESPONSE_TOO_LARGE');
  });

  it('logs the replacement at most once a minute, saying how many were not logged (each is still counted)', async () => {
    const { logger, lines } = recordingLogger();
    const verdict = await startTestVerdict(
      [
        `policy.bundle=${await (bundle ??= buildTestBundle({ 'policy.rego': POLICY }))}`,
        'cache.enabled=false',
        'server.grpc.maxSendMessageBytes=2048',
      ],
      { logger },
    );
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      for (let i = 0; i < 3; i++) expect((await client.check(big())).status?.code).toBe(7);
      const warned = lines.filter((l) => l.msg.startsWith('CheckResponse too large'));
      expect(warned).toHaveLength(1);
      expect(warned[0]?.fields).toMatchObject({ code: 'ERR_RESPONSE_TOO_LARGE', notLoggedSinceLast: 0 });
      const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
      expect(text).toMatch(/verdict_decisions_total\{result="deny",engine="none",reason="ERR_RESPONSE_TOO_LARGE"\} 3/);
    } finally {
      client.close();
      await verdict.stop();
    }
  });

  it('the default bound sends it', async () => {
    const { client } = await serve();
    const res = await client.check(big());
    expect(res.deniedResponse?.body).toHaveLength(4096);
  });
});

describe('decision.performanceMetrics (peer: enable-performance-metrics)', () => {
  const steps = ['timer_verdict_identity_ns', 'timer_verdict_cache_ns', 'timer_verdict_input_ns'];

  it('on: every step is timed in the decision log and in verdict_decision_step_duration_seconds', async () => {
    const { client, logFile, verdict } = await serve('decision.performanceMetrics=true');
    const res = await client.check(denied());
    const event = await loggedEvent(logFile, decisionId(res));
    for (const s of steps) expect(event.metrics?.[s], s).toEqual(expect.any(Number));
    expect(event.metrics?.timer_rego_query_eval_ns).toEqual(expect.any(Number));
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    for (const step of ['identity', 'cache', 'input', 'eval'])
      expect(text).toMatch(new RegExp(`verdict_decision_step_duration_seconds_count\\{step="${step}"\\} [1-9]`));
  });

  it('off (default): only the total and eval timers', async () => {
    const { client, logFile, verdict } = await serve();
    const res = await client.check(denied());
    const event = await loggedEvent(logFile, decisionId(res));
    expect(Object.keys(event.metrics ?? {}).sort()).toEqual(['timer_rego_query_eval_ns', 'timer_server_handler_ns']);
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(text).not.toMatch(/verdict_decision_step_duration_seconds_count\{/);
  });
});

describe('policy.entrypoint (peer: path, and its deprecated query)', () => {
  it('queries the configured rule', async () => {
    const other = await buildTestBundle(
      { 'policy.rego': 'package envoy.other\nimport rego.v1\nallow := {"allowed": false, "http_status": 409}\n' },
      'envoy/other/allow',
    );
    const verdict = await startTestVerdict([`policy.bundle=${other}`, 'policy.entrypoint=envoy/other/allow']);
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    running.push({ client, verdict, logFile: '' });
    expect((await client.check(denied())).deniedResponse?.status?.code).toBe(409);
  });
});

describe("the same switches in Envoy's HTTP ext_authz protocol", () => {
  const ask = async (port: number | null) => fetch(`http://127.0.0.1:${port}/x`);
  const cases = [
    { name: 'defaults: the policy deny with the reason header', sets: [], status: 401, reason: 'DENIED_BY_POLICY' },
    { name: 'decision.dryRun: the deny goes out as 200', sets: ['decision.dryRun=true'], status: 200, reason: null },
    { name: 'decision.exposeReason=false: no reason header', sets: ['decision.exposeReason=false'], status: 401, reason: null },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { verdict } = await serve('httpAuthz.port=0', ...c.sets);
      const res = await ask(verdict.httpAuthzPort);
      expect(res.status).toBe(c.status);
      expect(res.headers.get('x-verdict-reason')).toBe(c.reason);
    });
  }
});
