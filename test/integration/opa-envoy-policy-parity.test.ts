import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/cli/tools';
import type { RunningVerdict } from '../../src/main';
import { buildTestBundle, checkClient, startTestVerdict, tempDir, type CheckClient } from '../helpers/verdict-harness';

/**
 * A policy written for opa-envoy-plugin decides the same under verdict: the same Rego, evaluated by verdict
 * on the input it builds from a real CheckRequest, and by the pinned `opa eval` on an input written here by
 * hand from the peer's rules (envoyauth/protomap.go: int64 and Timestamp parts are numbers, enums numbers;
 * envoyauth/request.go: JSON body numbers exact). Under the old string shapes `size > 1000` held for every
 * request (a string is greater than any number in Rego): the small-size cases catch that.
 */
const POLICY = `package envoy.authz
import rego.v1

default large := false
large if input.attributes.request.http.size > 1000

default recent := false
recent if input.attributes.request.time.seconds >= 1764000000

default sub_second := false
sub_second if input.attributes.request.time.nanos > 0

default udp := false
udp if input.attributes.source.address.socketAddress.protocol == 1

default unknown_size := false
unknown_size if input.attributes.request.http.size == -1

default huge_body_number := false
huge_body_number if input.parsed_body.n > 9007199254740992

decision := {
  "large": large,
  "recent": recent,
  "sub_second": sub_second,
  "udp": udp,
  "unknown_size": unknown_size,
  "port_is_number": is_number(input.attributes.source.address.socketAddress.portValue),
  "huge_body_number": huge_body_number,
}

allow := {"allowed": false, "http_status": 403, "body": json.marshal(decision)}
`;

interface Case {
  name: string;
  /** What Envoy sends (proto-loader object form). */
  request: { size?: string; seconds: string; nanos?: number; protocol?: 'TCP' | 'UDP'; body?: string };
  /** The input opa-envoy-plugin builds for it, by hand from its rules. */
  peerInput: Record<string, unknown>;
  /** Decisions the rules must give (so a case cannot pass by both sides being undefined or alike-wrong). */
  want: Record<string, boolean>;
}

function checkRequest(r: Case['request']): Record<string, unknown> {
  return {
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.1', portValue: 4242, ...(r.protocol ? { protocol: r.protocol } : {}) } } },
      request: {
        time: { seconds: r.seconds, ...(r.nanos ? { nanos: r.nanos } : {}) },
        http: {
          method: 'POST',
          path: '/',
          ...(r.size ? { size: r.size } : {}),
          ...(r.body ? { body: r.body, headers: { 'content-type': 'application/json' } } : {}),
        },
      },
    },
  };
}

function peerInput(
  http: Record<string, unknown>,
  time: Record<string, unknown>,
  socket: Record<string, unknown>,
  parsedBody: unknown = null,
): Record<string, unknown> {
  return {
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.1', portValue: 4242, ...socket } } },
      request: { time, http: { method: 'POST', path: '/', ...http } },
    },
    parsed_path: [''],
    parsed_query: {},
    parsed_body: parsedBody,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };
}

const CASES: Case[] = [
  {
    name: 'small size, old time, TCP',
    request: { size: '10', seconds: '1600000000' },
    want: { large: false, recent: false, udp: false },
    peerInput: peerInput({ size: 10 }, { seconds: 1600000000 }, {}),
  },
  {
    name: 'large size, recent time with nanos, UDP',
    request: { size: '5000', seconds: '1764000000', nanos: 5, protocol: 'UDP' },
    want: { large: true, recent: true, sub_second: true, udp: true },
    peerInput: peerInput({ size: 5000 }, { seconds: 1764000000, nanos: 5 }, { protocol: 1 }),
  },
  {
    name: 'size exactly 1000',
    request: { size: '1000', seconds: '1764000001' },
    want: { large: false },
    peerInput: peerInput({ size: 1000 }, { seconds: 1764000001 }, {}),
  },
  {
    name: 'size unknown (-1)',
    request: { size: '-1', seconds: '1764000000' },
    want: { unknown_size: true, large: false },
    peerInput: peerInput({ size: -1 }, { seconds: 1764000000 }, {}),
  },
  {
    name: 'no size (0 is absent)',
    request: { size: '0', seconds: '1764000000', protocol: 'TCP' },
    want: { large: false, unknown_size: false, port_is_number: true },
    peerInput: peerInput({}, { seconds: 1764000000 }, {}),
  },
  {
    name: 'JSON body number just past 2^53',
    request: { seconds: '1764000000', body: '{"n":9007199254740993}' },
    want: { huge_body_number: true },
    peerInput: {
      ...peerInput({ body: '{"n":9007199254740993}', headers: { 'content-type': 'application/json' } }, { seconds: 1764000000 }, {}),
      parsed_body: 'RAW',
    },
  },
  {
    name: 'JSON body number equal to 2^53',
    request: { seconds: '1764000000', body: '{"n":9007199254740992}' },
    want: { huge_body_number: false },
    peerInput: {
      ...peerInput({ body: '{"n":9007199254740992}', headers: { 'content-type': 'application/json' } }, { seconds: 1764000000 }, {}),
      parsed_body: 'RAW',
    },
  },
];

describe('the same Rego decides alike on verdict-built and peer-built inputs (opa eval)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const dir = tempDir('verdict-parity-');
  const policyFile = join(dir, 'policy.rego');

  beforeAll(async () => {
    writeFileSync(policyFile, POLICY);
    verdict = await startTestVerdict([`policy.bundle=${await buildTestBundle({ 'policy.rego': POLICY })}`]);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const res = await client.check(checkRequest(c.request));
      const underVerdict = JSON.parse(res.deniedResponse?.body ?? 'null') as unknown;

      // The hand-built input, as JSON text so a body number keeps its digits (Go json.Number → opa).
      let text = JSON.stringify(c.peerInput);
      if (c.request.body) text = text.replace('"parsed_body":"RAW"', `"parsed_body":${c.request.body}`);
      const inputFile = join(dir, `${c.name.replace(/\W+/g, '-')}.json`);
      writeFileSync(inputFile, text);
      const { stdout } = await promisify(execFile)(toolPath('opa'), [
        'eval',
        '--format',
        'json',
        '-d',
        policyFile,
        '-i',
        inputFile,
        'data.envoy.authz.decision',
      ]);
      const underOPA = (JSON.parse(stdout) as { result: { expressions: { value: unknown }[] }[] }).result[0]?.expressions[0]?.value;

      expect(underOPA).toMatchObject(c.want);
      expect(underVerdict).toEqual(underOPA);
    });
  }
});
