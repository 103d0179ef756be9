import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { codeOfAsync } from '../helpers/error-code';
import { descriptorSetFromProto, grpcFrame } from '../helpers/grpc-descriptor-set';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  startTestVerdict,
  tempDir,
  type CheckClient,
  type CheckResponse,
} from '../helpers/verdict-harness';

/**
 * gRPC request bodies as opa-envoy-plugin v1.19.1-envoy gives them to a policy when its `proto-descriptor`
 * is configured, over the real gRPC server: a Rego policy denies with `json.marshal(input)` as its body.
 * The descriptor set is made at test time (protobufjs → ext/descriptor), as `protoc --descriptor_set_out`
 * would write it. Expected values come from the peer's rules as read in its source (each case's `rule`),
 * and from Go protojson.Marshal's JSON mapping, which the peer applies before util.Unmarshal.
 */

const ECHO_POLICY = `package envoy.authz
import rego.v1
allow := {"allowed": false, "http_status": 403, "body": json.marshal(input)}
`;

const BODY = 'envoyauth/request.go getParsedBody';
const GRPC = 'envoyauth/request.go getGRPCBody';
const FIND = 'envoyauth/request.go findService / findMessageInputDesc';
const PROTOJSON = 'envoyauth/request.go getGRPCBody (protojson.Marshal)';
const BOUND = 'verdict bound (limits.*, docs/grpc-body.md)';

const PROTO = `syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/any.proto";
enum Kind { KIND_UNSPECIFIED = 0; KIND_BOOK = 1; KIND_GAME = 2; }
message Item { string sku_id = 1; int64 count = 2; }
message Order {
  string order_id = 1;
  int64 total = 2;
  uint64 big = 3;
  sint64 delta = 4;
  Kind kind = 5;
  bytes blob = 6;
  Item item = 7;
  repeated int32 nums = 8;
  map<string, int64> tags = 9;
  map<int32, string> names = 10;
  double price = 11;
  float ratio = 12;
  optional int32 maybe = 13;
  bool flag = 14;
  google.protobuf.Timestamp at = 15;
  google.protobuf.Duration ttl = 16;
  google.protobuf.Struct meta = 17;
  google.protobuf.Int64Value wrapped = 18;
  repeated Item items = 19;
  oneof choice { string by_name = 20; int32 by_id = 21; }
  string note = 22;
  fixed64 stamp = 23;
  google.protobuf.Any extra = 24;
  string odd_key = 25;
}
message Node { Node child = 1; string tag = 2; }
service Orders {
  rpc Create(Order) returns (Item);
  rpc Walk(Node) returns (Item);
  rpc Upload(stream Item) returns (Item);
}`;

/** proto2 rules: closed enums, explicit presence, required fields. */
const LEGACY_PROTO = `syntax = "proto2";
package legacy.v1;
enum Level { LOW = 1; HIGH = 2; }
message Req { required string id = 1; optional Level level = 2; optional int32 n = 3; }
service Legacy { rpc Get(Req) returns (Req); }`;

const { set: SHOP_SET, root: ROOT } = descriptorSetFromProto(PROTO, {
  'shop.v1.Order.note': 'customNote',
  // A legal json_name that a careless `obj[key] = v` would turn into a prototype change.
  'shop.v1.Order.odd_key': '__proto__',
});
const { set: LEGACY_SET, root: LEGACY_ROOT } = descriptorSetFromProto(LEGACY_PROTO, {}, 'proto2');
/** Two sets' bytes concatenated are one set holding both files (protobuf merge appends repeated fields). */
const DESCRIPTOR_SET = Buffer.concat([SHOP_SET, LEGACY_SET]);
const LEGACY_REQ = LEGACY_ROOT.lookupType('legacy.v1.Req');
const LEGACY_PATH = { path: '/legacy.v1.Legacy/Get' };
const ORDER = ROOT.lookupType('shop.v1.Order');
const NODE = ROOT.lookupType('shop.v1.Node');

const order = (fields: Record<string, unknown>): Uint8Array => ORDER.encode(ORDER.fromObject(fields)).finish();
const encoded = (t: protobuf.Type, fields: Record<string, unknown>): Uint8Array => t.encode(t.fromObject(fields)).finish();
/** A Node chain `depth` messages deep, wrapped by hand (protobufjs' own encoder stops at its nesting limit). */
function nodes(depth: number): Uint8Array {
  let bytes: Uint8Array = encoded(NODE, { tag: 'leaf' });
  for (let i = 1; i < depth; i++) bytes = Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
  return bytes;
}
function varint(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

/** A Check for a gRPC call: Envoy's pack_as_bytes puts the framed body in raw_body. */
function grpcCall(raw: Buffer | null, opts: { path?: string; contentType?: string; headers?: Record<string, string>; body?: string } = {}) {
  return {
    attributes: {
      request: {
        http: {
          method: 'POST',
          path: opts.path ?? '/shop.v1.Orders/Create',
          headers: { 'content-type': opts.contentType ?? 'application/grpc', ...opts.headers },
          ...(raw ? { rawBody: raw.toString('base64') } : {}),
          ...(opts.body !== undefined ? { body: opts.body } : {}),
        },
      },
    },
  };
}

interface BodyCase {
  name: string;
  rule: string;
  request: Record<string, unknown>;
  parsedBody: unknown;
  truncated?: boolean;
  /** Substrings of the marshalled input: number text the policy must see as the peer writes it. */
  text?: string[];
}

const BODY_CASES: BodyCase[] = [
  {
    name: 'a unary body is decoded under json_name keys',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ order_id: 'o-1', flag: true }))),
    parsedBody: { orderId: 'o-1', flag: true },
  },
  {
    name: 'int64 is a string, exact past 2^53',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ total: '9007199254740993' }))),
    parsedBody: { total: '9007199254740993' },
  },
  {
    name: 'uint64 max is a string',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ big: '18446744073709551615' }))),
    parsedBody: { big: '18446744073709551615' },
  },
  {
    name: 'sint64 negative is a string',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ delta: '-3' }))),
    parsedBody: { delta: '-3' },
  },
  {
    name: 'fixed64 is a string',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ stamp: '1234567890123' }))),
    parsedBody: { stamp: '1234567890123' },
  },
  { name: 'enum is its name', rule: PROTOJSON, request: grpcCall(grpcFrame(order({ kind: 2 }))), parsedBody: { kind: 'KIND_GAME' } },
  {
    name: 'an enum number the descriptor does not name stays a number',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ kind: 7 }))),
    parsedBody: { kind: 7 },
  },
  {
    name: 'bytes are standard base64 with padding',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ blob: Buffer.from([0, 1, 254, 255]) }))),
    parsedBody: { blob: 'AAH+/w==' },
  },
  {
    name: 'nested message, its zero fields omitted',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ item: { sku_id: 'x', count: 0 } }))),
    parsedBody: { item: { skuId: 'x' } },
  },
  {
    name: 'a set empty nested message is {}',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ item: {} }))),
    parsedBody: { item: {} },
  },
  {
    name: 'proto3 zero values are omitted',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ order_id: '', total: 0, flag: false, kind: 0, price: 0 }))),
    parsedBody: {},
  },
  {
    name: 'an optional field set to zero is kept',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ maybe: 0 }))),
    parsedBody: { maybe: 0 },
  },
  {
    name: 'repeated int32 (packed) is a list',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ nums: [1, -2, 3] }))),
    parsedBody: { nums: [1, -2, 3] },
  },
  {
    name: 'repeated int32 sent unpacked is the same list',
    rule: PROTOJSON,
    // field 8 as three separate varints: proto spec "Packed Repeated Fields": parsers accept both.
    request: grpcCall(grpcFrame(Buffer.from([0x40, 1, 0x40, 2, 0x40, 3]))),
    parsedBody: { nums: [1, 2, 3] },
  },
  {
    name: 'repeated messages are a list of objects',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ items: [{ sku_id: 'a' }, { count: 2 }] }))),
    parsedBody: { items: [{ skuId: 'a' }, { count: '2' }] },
  },
  {
    name: 'map<string, int64> values are strings',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ tags: { a: 5, b: 0 } }))),
    parsedBody: { tags: { a: '5', b: '0' } },
  },
  {
    name: 'map<int32, string> keys are decimal strings',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ names: { 7: 'seven', '-1': 'minus' } }))),
    parsedBody: { names: { '7': 'seven', '-1': 'minus' } },
  },
  {
    name: 'double and float print shortest (float 0.1 is 0.1)',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ price: 1.5, ratio: 0.1 }))),
    parsedBody: { price: 1.5, ratio: 0.1 },
    text: ['"ratio":0.1'],
  },
  {
    name: 'a NaN double is the string "NaN"',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ price: Number.NaN }))),
    parsedBody: { price: 'NaN' },
  },
  {
    name: 'negative zero double is written -0',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ price: -0 }))),
    parsedBody: { price: -0 },
    text: ['"price":-0'],
  },
  {
    name: 'Timestamp is RFC 3339 with 3 fractional digits for millis',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ at: { seconds: 1764000000, nanos: 5000000 } }))),
    parsedBody: { at: '2025-11-24T16:00:00.005Z' },
  },
  {
    name: 'Duration is seconds with an s suffix',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ ttl: { seconds: 1, nanos: 500000000 } }))),
    parsedBody: { ttl: '1.500s' },
  },
  {
    name: 'Struct is plain JSON',
    rule: PROTOJSON,
    request: grpcCall(
      grpcFrame(
        order({
          meta: {
            fields: {
              s: { stringValue: 'v' },
              n: { numberValue: 2 },
              z: { nullValue: 0 },
              l: { listValue: { values: [{ boolValue: true }] } },
            },
          },
        }),
      ),
    ),
    parsedBody: { meta: { s: 'v', n: 2, z: null, l: [true] } },
  },
  {
    name: 'Int64Value wrapper is its value as a string',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ wrapped: { value: '5' } }))),
    parsedBody: { wrapped: '5' },
  },
  {
    name: 'a oneof keeps the last member set on the wire',
    rule: PROTOJSON,
    // by_name (20) then by_id (21): proto spec "Oneof": the last one seen wins.
    request: grpcCall(grpcFrame(Buffer.concat([order({ by_name: 'n' }), order({ by_id: 4 })]))),
    parsedBody: { byId: 4 },
  },
  {
    name: 'a json_name from the descriptor is the key',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ note: 'hi' }))),
    parsedBody: { customNote: 'hi' },
  },
  {
    name: 'a json_name of __proto__ is an ordinary key',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ odd_key: 'v', order_id: 'k' }))),
    parsedBody: JSON.parse('{"orderId":"k","__proto__":"v"}') as unknown,
    text: ['"__proto__":"v"'],
  },
  {
    name: 'fields the descriptor does not know are skipped',
    rule: PROTOJSON,
    // field 99 (varint) before order_id: dynamicpb keeps it as unknown; protojson never writes unknowns.
    request: grpcCall(grpcFrame(Buffer.concat([Buffer.from([0x98, 0x06, 0x01]), order({ order_id: 'k' })]))),
    parsedBody: { orderId: 'k' },
  },
  {
    name: 'only the first message of the body is read',
    rule: GRPC,
    request: grpcCall(Buffer.concat([grpcFrame(order({ order_id: 'first' })), grpcFrame(order({ order_id: 'second' }))])),
    parsedBody: { orderId: 'first' },
  },
  {
    name: 'application/grpc+proto matches by substring',
    rule: BODY,
    request: grpcCall(grpcFrame(order({ order_id: 'p' })), { contentType: 'application/grpc+proto' }),
    parsedBody: { orderId: 'p' },
  },
  {
    name: 'an empty message is {}',
    rule: GRPC,
    request: grpcCall(grpcFrame(new Uint8Array(0))),
    parsedBody: {},
  },
  {
    name: 'proto2: an optional field set to zero is kept',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(encoded(LEGACY_REQ, { id: 'a', n: 0 })), LEGACY_PATH),
    parsedBody: { id: 'a', n: 0 },
  },
  {
    name: 'proto2: a closed enum keeps its name',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(encoded(LEGACY_REQ, { id: 'a', level: 2 })), LEGACY_PATH),
    parsedBody: { id: 'a', level: 'HIGH' },
  },
  {
    name: 'proto2: a number a closed enum does not name is an unknown field, not set',
    rule: PROTOJSON,
    // level (field 2) = 9: Go files it under unknown fields, so protojson writes nothing for it.
    request: grpcCall(grpcFrame(Buffer.concat([encoded(LEGACY_REQ, { id: 'a' }), Buffer.from([0x10, 9])])), LEGACY_PATH),
    parsedBody: { id: 'a' },
  },
  {
    name: 'unknown service is null, not an error',
    rule: FIND,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/shop.v1.Nope/Create' }),
    parsedBody: null,
  },
  {
    name: 'unknown method is null, not an error',
    rule: FIND,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/shop.v1.Orders/Delete' }),
    parsedBody: null,
  },
  {
    name: 'a method named like an Object.prototype member is unknown',
    rule: FIND,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/shop.v1.Orders/constructor' }),
    parsedBody: null,
  },
  {
    name: 'a service named without its package is unknown',
    rule: FIND,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/Orders/Create' }),
    parsedBody: null,
  },
  {
    name: 'a message name is not a service',
    rule: FIND,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/shop.v1.Order/Create' }),
    parsedBody: null,
  },
  {
    name: 'a client-streaming method is not parsed',
    rule: FIND,
    request: grpcCall(grpcFrame(encoded(ROOT.lookupType('shop.v1.Item'), { sku_id: 'a' })), { path: '/shop.v1.Orders/Upload' }),
    parsedBody: null,
  },
  {
    name: 'compressed flag set: null, not truncated',
    rule: GRPC,
    request: grpcCall(grpcFrame(order({ order_id: 'z' }), true)),
    parsedBody: null,
    truncated: false,
  },
  {
    name: 'a frame declaring more bytes than were sent is truncated',
    rule: GRPC,
    request: grpcCall(grpcFrame(order({ order_id: 'cut' }), false, 1000)),
    parsedBody: null,
    truncated: true,
  },
  {
    name: 'x-envoy-auth-partial-body: true is truncated before any decoding',
    rule: BODY,
    request: grpcCall(Buffer.from([1, 2]), { headers: { 'x-envoy-auth-partial-body': 'true' } }),
    parsedBody: null,
    truncated: true,
  },
  {
    name: 'no raw_body (a string body only) is null',
    rule: BODY,
    request: grpcCall(null, { body: 'AAAAAAA=' }),
    parsedBody: null,
  },
  {
    name: 'a non-gRPC content type leaves a framed body unparsed',
    rule: BODY,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { contentType: 'application/octet-stream' }),
    parsedBody: null,
  },
  {
    name: 'a body over limits.maxParsedBodyBytes is truncated',
    rule: BOUND,
    request: grpcCall(grpcFrame(order({ order_id: 'x'.repeat(70 * 1024) }))),
    parsedBody: null,
    truncated: true,
  },
];

interface RefusalCase {
  name: string;
  rule: string;
  request: Record<string, unknown>;
  code: string;
  reason?: string;
}

const REFUSAL_CASES: RefusalCase[] = [
  {
    name: 'fewer than 5 bytes',
    rule: GRPC,
    request: grpcCall(Buffer.from([0, 0, 0])),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'less than 5 bytes',
  },
  {
    name: 'a path that is not /Service/Method',
    rule: BODY,
    request: grpcCall(grpcFrame(order({ order_id: 'x' })), { path: '/shop.v1.Orders/Create/extra' }),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'invalid parsed path',
  },
  {
    name: 'a message cut inside a field',
    rule: GRPC,
    // order_id declares 10 bytes, 2 follow: proto.Unmarshal fails.
    request: grpcCall(grpcFrame(Buffer.from([0x0a, 10, 0x61, 0x62]))),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'proto: cannot parse invalid wire-format data',
  },
  {
    name: 'invalid UTF-8 in a string field',
    rule: GRPC,
    request: grpcCall(grpcFrame(Buffer.from([0x0a, 2, 0xff, 0xfe]))),
    code: 'ERR_REQUEST_BODY_PARSE',
  },
  {
    name: 'proto2: a required field missing',
    rule: GRPC,
    // n (field 3) = 1 only, by hand: protobufjs' encoder would write the required id as "".
    request: grpcCall(grpcFrame(Buffer.from([0x18, 1])), LEGACY_PATH),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'proto: required field legacy.v1.Req.id not set',
  },
  {
    name: 'a Timestamp past year 9999',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ at: { seconds: 253402300800 } }))),
    code: 'ERR_REQUEST_BODY_PARSE',
  },
  {
    name: 'an Any whose type the peer binary cannot resolve',
    rule: PROTOJSON,
    request: grpcCall(grpcFrame(order({ extra: { type_url: 'type.googleapis.com/shop.v1.Item', value: Buffer.from([0x0a, 1, 0x61]) } }))),
    code: 'ERR_REQUEST_BODY_PARSE',
  },
  {
    name: 'more packed elements than limits.maxRequestFields',
    rule: BOUND,
    request: grpcCall(grpcFrame(Buffer.concat([Buffer.from([0x42]), varint(60_000), Buffer.alloc(60_000, 1)]))),
    code: 'ERR_REQUEST_TOO_MANY_FIELDS',
  },
  {
    name: 'messages nested past limits.maxInputDepth',
    rule: BOUND,
    request: grpcCall(grpcFrame(nodes(200)), { path: '/shop.v1.Orders/Walk' }),
    code: 'ERR_REQUEST_TOO_DEEP',
  },
];

function descriptorFile(bytes: Buffer): string {
  const file = join(tempDir('verdict-grpc-desc-'), 'set.binpb');
  writeFileSync(file, bytes);
  return file;
}

describe('gRPC bodies from policy.protoDescriptor over the real gRPC server', () => {
  let verdict: RunningVerdict;
  let plain: RunningVerdict;
  let client: CheckClient;
  let plainClient: CheckClient;
  let bundle: string;
  const inputOf = (res: CheckResponse): { parsed_body: unknown; truncated_body: boolean } => {
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('DENIED_BY_POLICY');
    return JSON.parse(res.deniedResponse?.body ?? '') as { parsed_body: unknown; truncated_body: boolean };
  };

  beforeAll(async () => {
    bundle = await buildTestBundle({ 'policy.rego': ECHO_POLICY });
    verdict = await startTestVerdict([`policy.bundle=${bundle}`, `policy.protoDescriptor=${descriptorFile(DESCRIPTOR_SET)}`]);
    plain = await startTestVerdict([`policy.bundle=${bundle}`]);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    plainClient = checkClient(`127.0.0.1:${plain.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    plainClient.close();
    await verdict.stop();
    await plain.stop();
  });

  for (const c of BODY_CASES) {
    it(`${c.name} (${c.rule})`, async () => {
      const res = await client.check(c.request);
      const input = inputOf(res);
      expect(input.parsed_body).toEqual(c.parsedBody);
      expect(input.truncated_body).toBe(c.truncated ?? false);
      for (const t of c.text ?? []) expect(res.deniedResponse?.body).toContain(t);
    });
  }

  for (const c of REFUSAL_CASES) {
    it(`refuses: ${c.name} (${c.rule})`, async () => {
      const res = await client.check(c.request);
      expect(res.status?.code).toBe(7);
      expect(res.deniedResponse?.status?.code).toBe(400);
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe(c.code);
      const body = res.deniedResponse?.body ?? '';
      if (c.code === 'ERR_REQUEST_BODY_PARSE') {
        // internal/internal.go check: "request_parse_error: <reason>" as body and status message.
        expect(body).toMatch(/^request_parse_error: /);
        expect(res.status?.message).toBe(body);
        if (c.reason !== undefined) expect(body).toBe(`request_parse_error: ${c.reason}`);
      } else {
        expect(body).toBe(''); // the policy (which echoes its input) never ran
      }
    });
  }

  it(`without a descriptor set a gRPC body stays null (${BODY}: protoSet == nil)`, async () => {
    const input = inputOf(await plainClient.check(grpcCall(grpcFrame(order({ order_id: 'o-1' })))));
    expect(input.parsed_body).toBeNull();
    expect(input.truncated_body).toBe(false);
  });

  it('after every refusal the next gRPC body is still decoded', async () => {
    const input = inputOf(await client.check(grpcCall(grpcFrame(order({ order_id: 'after' })))));
    expect(input.parsed_body).toEqual({ orderId: 'after' });
  });
});

describe('policy.protoDescriptor refuses the start (internal/internal.go Validate → internal/util/util.go ReadProtoSet)', () => {
  const cases: { name: string; file: () => string }[] = [
    { name: 'a missing file', file: () => join(tempDir('verdict-grpc-desc-'), 'absent.binpb') },
    { name: 'bytes that are not a FileDescriptorSet', file: () => descriptorFile(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])) },
    { name: 'a set naming a type it does not define', file: () => descriptorFile(brokenReference()) },
    { name: 'a file over the 16 MiB cap', file: oversized },
  ];
  for (const c of cases) {
    it(`${c.name} is ERR_CONFIG`, async () => {
      expect(await codeOfAsync(() => startTestVerdict([`policy.protoDescriptor=${c.file()}`]))).toBe('ERR_CONFIG');
    });
  }
});

/** A set whose field names a type absent from it (protoc run without --include_imports). */
function brokenReference(): Buffer {
  const { set } = descriptorSetFromProto('syntax = "proto3"; package p; message A { string x = 1; } service S { rpc M(A) returns (A); }');
  const decoded = descriptor.FileDescriptorSet.decode(set) as unknown as {
    file: { messageType: { field: { type?: number; typeName?: string }[] }[] }[];
  };
  const field = decoded.file[0]?.messageType[0]?.field[0];
  if (field === undefined) throw new Error('test descriptor has no field to break');
  field.type = 11; // TYPE_MESSAGE
  field.typeName = '.p.Missing';
  return Buffer.from(descriptor.FileDescriptorSet.encode(decoded as unknown as protobuf.Message).finish());
}

/** A sparse file one byte over the cap: refused by its size before a byte is read. */
function oversized(): string {
  const file = descriptorFile(Buffer.alloc(0));
  truncateSync(file, 16 * 1024 * 1024 + 1);
  return file;
}
