import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  startTestVerdict,
  type CheckClient,
  type CheckResponse,
} from '../helpers/verdict-harness';
import { attrs, http as httpWire, int, len, str, tag } from '../helpers/proto-writer';

/**
 * The input document opa-envoy-plugin v1.19.1-envoy builds, field by field, checked over the real gRPC
 * server: a Rego policy denies with `json.marshal(input)` as its body, so each case reads what the policy
 * saw. Every expected value comes from the peer's rules as read in its source (the `rule` of each case:
 * file and function), never from running verdict. Parse errors are answered as the peer answers them
 * (internal/internal.go `check`: status 7, DeniedHttpResponse 400, body and message
 * `request_parse_error: <reason>`); requests that cannot be decoded or break a bound are refused with a code.
 */

const ECHO_POLICY = `package envoy.authz
import rego.v1
allow := {"allowed": false, "http_status": 403, "body": json.marshal(input)}
`;

const PROTOMAP = 'envoyauth/protomap.go protomap';
const REQUEST_TO_INPUT = 'envoyauth/request.go RequestToInput';
const PATH_QUERY = 'envoyauth/request.go getParsedPathAndQuery';
const BODY = 'envoyauth/request.go getParsedBody';
const TRUNCATED = 'envoyauth/request.go checkIfHTTPBodyTruncated';
const CHECK = 'internal/internal.go check';
const ABSENT = Symbol('absent');

type Http = Record<string, unknown>;
/** A CheckRequest in proto-loader's object form (what the test client serializes). */
function request(http: Http, attributes: Record<string, unknown> = {}): Record<string, unknown> {
  return { attributes: { request: { http: { method: 'POST', path: '/', ...http } }, ...attributes } };
}
const json = (body: string, headers: Record<string, string> = {}): Record<string, unknown> =>
  request({ headers: { 'content-type': 'application/json', ...headers }, body });
const form = (body: string): Record<string, unknown> => request({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
const multipart = (body: string, boundary = 'B0undary'): Record<string, unknown> =>
  request({ headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
const part = (name: string | null, value: string, type?: string, b = 'B0undary'): string =>
  `--${b}\r\nContent-Disposition: form-data${name === null ? '' : `; name="${name}"`}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n${value}\r\n`;
const path = (p: string): Record<string, unknown> => request({ method: 'GET', path: p });
const peer = (p: Record<string, unknown>): Record<string, unknown> => request({}, { source: p });

interface InputCase {
  name: string;
  rule: string;
  request: Record<string, unknown> | Buffer;
  /** Dotted path in the input → the value the peer gives (ABSENT: the key is not there). */
  expect: Record<string, unknown>;
  /** Substrings of the marshalled input: number text the policy must see exactly as written. */
  text?: string[];
}

const INPUT_CASES: InputCase[] = [
  // --- attributes: protomap's field rules
  {
    name: 'request.time is {seconds, nanos}',
    rule: PROTOMAP,
    request: request({}, { request: { time: { seconds: '1764000000', nanos: 123000000 }, http: { path: '/' } } }),
    expect: { 'attributes.request.time': { seconds: 1764000000, nanos: 123000000 } },
  },
  {
    name: 'request.time with zero nanos has only seconds',
    rule: PROTOMAP,
    request: request({}, { request: { time: { seconds: '1764000000' }, http: { path: '/' } } }),
    expect: { 'attributes.request.time': { seconds: 1764000000 } },
  },
  {
    name: 'request.time before 1970 is a negative number',
    rule: PROTOMAP,
    request: request({}, { request: { time: { seconds: '-5', nanos: 1 }, http: { path: '/' } } }),
    expect: { 'attributes.request.time': { seconds: -5, nanos: 1 } },
  },
  { name: 'http.size is a number', rule: PROTOMAP, request: request({ size: '512' }), expect: { 'attributes.request.http.size': 512 } },
  {
    name: 'http.size -1 (unknown) is -1',
    rule: PROTOMAP,
    request: request({ size: '-1' }),
    expect: { 'attributes.request.http.size': -1 },
  },
  { name: 'http.size 0 is absent', rule: PROTOMAP, request: request({ size: '0' }), expect: { 'attributes.request.http.size': ABSENT } },
  {
    name: 'http.size past 2^53 stays exact',
    rule: PROTOMAP,
    request: request({ size: '9007199254740993' }),
    expect: {},
    text: ['"size":9007199254740993'],
  },
  {
    name: 'http.size int64 max stays exact',
    rule: PROTOMAP,
    request: request({ size: '9223372036854775807' }),
    expect: {},
    text: ['"size":9223372036854775807'],
  },
  {
    name: 'http.method and path as strings',
    rule: PROTOMAP,
    request: request({ method: 'PUT', path: '/p' }),
    expect: { 'attributes.request.http.method': 'PUT', 'attributes.request.http.path': '/p' },
  },
  {
    name: 'empty strings are absent (id, host)',
    rule: PROTOMAP,
    request: request({ id: '', host: '' }),
    expect: { 'attributes.request.http.id': ABSENT, 'attributes.request.http.host': ABSENT },
  },
  {
    name: 'id, host, scheme, query, fragment, protocol present when set',
    rule: PROTOMAP,
    request: request({ id: 'r1', host: 'h', scheme: 'https', query: 'a=1', fragment: 'f', protocol: 'HTTP/2' }),
    expect: {
      'attributes.request.http.id': 'r1',
      'attributes.request.http.host': 'h',
      'attributes.request.http.scheme': 'https',
      'attributes.request.http.query': 'a=1',
      'attributes.request.http.fragment': 'f',
      'attributes.request.http.protocol': 'HTTP/2',
    },
  },
  {
    name: 'headers map as given',
    rule: PROTOMAP,
    request: request({ headers: { 'x-a': '1', ':authority': 'h' } }),
    expect: { 'attributes.request.http.headers': { 'x-a': '1', ':authority': 'h' } },
  },
  {
    name: 'an empty headers map is absent',
    rule: PROTOMAP,
    request: request({ headers: {} }),
    expect: { 'attributes.request.http.headers': ABSENT },
  },
  {
    name: 'headerMap raw values are base64 (encode_raw_headers)',
    rule: PROTOMAP,
    request: request({ headerMap: { headers: [{ key: 'x-raw', rawValue: Buffer.from('v\u00ff').toString('base64') }] } }),
    expect: { 'attributes.request.http.headerMap': { headers: [{ key: 'x-raw', rawValue: Buffer.from('v\u00ff').toString('base64') }] } },
  },
  {
    name: 'headerMap string values',
    rule: PROTOMAP,
    request: request({
      headerMap: {
        headers: [
          { key: 'a', value: '1' },
          { key: 'a', value: '2' },
        ],
      },
    }),
    expect: {
      'attributes.request.http.headerMap.headers': [
        { key: 'a', value: '1' },
        { key: 'a', value: '2' },
      ],
    },
  },
  {
    name: 'rawBody is base64',
    rule: PROTOMAP,
    request: request({ rawBody: Buffer.from([0, 1, 254, 255]).toString('base64') }),
    expect: { 'attributes.request.http.rawBody': 'AAH+/w==' },
  },
  {
    name: 'body string as given',
    rule: PROTOMAP,
    request: request({ body: 'hello' }),
    expect: { 'attributes.request.http.body': 'hello' },
  },
  {
    name: 'source.principal and source_principal',
    rule: REQUEST_TO_INPUT,
    request: peer({ principal: 'spiffe://td/a' }),
    expect: { 'attributes.source.principal': 'spiffe://td/a', source_principal: 'spiffe://td/a' },
  },
  {
    name: 'no source principal: no source_principal key',
    rule: REQUEST_TO_INPUT,
    request: peer({ service: 's' }),
    expect: { source_principal: ABSENT, 'attributes.source.service': 's' },
  },
  {
    name: 'peer labels map',
    rule: PROTOMAP,
    request: peer({ labels: { app: 'web' } }),
    expect: { 'attributes.source.labels': { app: 'web' } },
  },
  {
    name: 'peer certificate string',
    rule: PROTOMAP,
    request: peer({ certificate: '-----BEGIN%20CERTIFICATE-----' }),
    expect: { 'attributes.source.certificate': '-----BEGIN%20CERTIFICATE-----' },
  },
  {
    name: 'socketAddress address and portValue',
    rule: PROTOMAP,
    request: peer({ address: { socketAddress: { address: '10.0.0.1', portValue: 8080 } } }),
    expect: { 'attributes.source.address': { socketAddress: { address: '10.0.0.1', portValue: 8080 } } },
  },
  {
    name: 'socketAddress protocol TCP (0) is absent',
    rule: PROTOMAP,
    request: peer({ address: { socketAddress: { address: 'a', protocol: 'TCP', portValue: 1 } } }),
    expect: { 'attributes.source.address.socketAddress.protocol': ABSENT },
  },
  {
    name: 'socketAddress protocol UDP is the enum number 1',
    rule: PROTOMAP,
    request: peer({ address: { socketAddress: { address: 'a', protocol: 'UDP', portValue: 1 } } }),
    expect: { 'attributes.source.address.socketAddress.protocol': 1 },
  },
  {
    name: 'a oneof member set to zero is present (portValue 0)',
    rule: PROTOMAP,
    request: peer({ address: { socketAddress: { address: 'a', portValue: 0 } } }),
    expect: { 'attributes.source.address.socketAddress.portValue': 0 },
  },
  {
    name: 'namedPort, resolverName, ipv4Compat',
    rule: PROTOMAP,
    request: peer({ address: { socketAddress: { address: 'a', namedPort: 'http', resolverName: 'r', ipv4Compat: true } } }),
    expect: { 'attributes.source.address.socketAddress': { address: 'a', namedPort: 'http', resolverName: 'r', ipv4Compat: true } },
  },
  {
    name: 'pipe path and mode',
    rule: PROTOMAP,
    request: peer({ address: { pipe: { path: '/run/s', mode: 384 } } }),
    expect: { 'attributes.source.address': { pipe: { path: '/run/s', mode: 384 } } },
  },
  {
    name: 'envoyInternalAddress',
    rule: PROTOMAP,
    request: peer({ address: { envoyInternalAddress: { serverListenerName: 'l', endpointId: 'e' } } }),
    expect: { 'attributes.source.address': { envoyInternalAddress: { serverListenerName: 'l', endpointId: 'e' } } },
  },
  {
    name: 'an empty peer message is {}',
    rule: PROTOMAP,
    request: request({}, { destination: {} }),
    expect: { 'attributes.destination': {} },
  },
  {
    name: 'contextExtensions map',
    rule: PROTOMAP,
    request: request({}, { contextExtensions: { route: 'r1' } }),
    expect: { 'attributes.contextExtensions': { route: 'r1' } },
  },
  {
    name: 'metadataContext Struct is plain JSON',
    rule: PROTOMAP,
    request: request(
      {},
      {
        metadataContext: {
          filterMetadata: {
            jwt: {
              fields: {
                sub: { stringValue: 'u' },
                n: { numberValue: 2.5 },
                ok: { boolValue: true },
                z: { nullValue: 'NULL_VALUE' },
                l: { listValue: { values: [{ numberValue: 1 }] } },
                o: { structValue: { fields: { k: { stringValue: 'v' } } } },
              },
            },
          },
        },
      },
    ),
    expect: { 'attributes.metadataContext.filterMetadata.jwt': { sub: 'u', n: 2.5, ok: true, z: null, l: [1], o: { k: 'v' } } },
  },
  // Sent as raw bytes: the test client's protobufjs Any wrapper would rewrite the message.
  {
    name: 'typedFilterMetadata Any is {typeUrl, value} with value in base64',
    rule: PROTOMAP,
    request: attrs(len(11, len(2, [...str(1, 't'), ...len(2, [...str(1, 'type.googleapis.com/x.Y'), ...len(2, [1, 2])])]))),
    expect: { 'attributes.metadataContext.typedFilterMetadata.t': { typeUrl: 'type.googleapis.com/x.Y', value: 'AQI=' } },
  },
  {
    name: 'routeMetadataContext',
    rule: PROTOMAP,
    request: request({}, { routeMetadataContext: { filterMetadata: { r: { fields: { a: { stringValue: 'b' } } } } } }),
    expect: { 'attributes.routeMetadataContext': { filterMetadata: { r: { a: 'b' } } } },
  },
  {
    name: 'tlsSession sni',
    rule: PROTOMAP,
    request: request({}, { tlsSession: { sni: 'api.example.org' } }),
    expect: { 'attributes.tlsSession': { sni: 'api.example.org' } },
  },
  { name: 'version block', rule: REQUEST_TO_INPUT, request: path('/'), expect: { version: { ext_authz: 'v3', encoding: 'protojson' } } },
  {
    name: 'unknown fields are not in the input',
    rule: PROTOMAP,
    request: Buffer.concat([attrs(httpWire(str(2, 'GET'), str(4, '/')), int(77, 1)), Buffer.from(int(55, 9))]),
    expect: { 'attributes.request.http': { method: 'GET', path: '/' } },
  },
  {
    name: 'a repeated message field is merged (last scalar wins)',
    rule: PROTOMAP,
    request: attrs(httpWire(str(2, 'GET')), httpWire(str(2, 'PUT'), str(4, '/m'))),
    expect: { 'attributes.request.http': { method: 'PUT', path: '/m' } },
  },
  // --- parsed_path / parsed_query
  { name: 'path split on /', rule: PATH_QUERY, request: path('/api/v1/orders'), expect: { parsed_path: ['api', 'v1', 'orders'] } },
  { name: 'empty path is [""]', rule: PATH_QUERY, request: path(''), expect: { parsed_path: [''] } },
  { name: 'trailing slash keeps an empty segment', rule: PATH_QUERY, request: path('/a/'), expect: { parsed_path: ['a', ''] } },
  { name: 'leading slashes trimmed', rule: PATH_QUERY, request: path('///a'), expect: { parsed_path: ['a'] } },
  { name: 'dot segments kept', rule: PATH_QUERY, request: path('/a/../b'), expect: { parsed_path: ['a', '..', 'b'] } },
  { name: '%2F decoded before splitting', rule: PATH_QUERY, request: path('/a%2Fb'), expect: { parsed_path: ['a', 'b'] } },
  { name: 'plus stays plus in the path', rule: PATH_QUERY, request: path('/a+b'), expect: { parsed_path: ['a+b'] } },
  { name: 'UTF-8 escapes in the path', rule: PATH_QUERY, request: path('/caf%C3%A9'), expect: { parsed_path: ['café'] } },
  { name: 'no query: parsed_query {}', rule: PATH_QUERY, request: path('/x'), expect: { parsed_query: {} } },
  {
    name: 'query repeated keys keep order',
    rule: PATH_QUERY,
    request: path('/x?a=1&b=2&a=3'),
    expect: { parsed_query: { a: ['1', '3'], b: ['2'] } },
  },
  { name: 'query plus and %20 are spaces', rule: PATH_QUERY, request: path('/x?q=a+b%20c'), expect: { parsed_query: { q: ['a b c'] } } },
  { name: 'k and k= both give [""]', rule: PATH_QUERY, request: path('/x?k&j='), expect: { parsed_query: { k: [''], j: [''] } } },
  { name: 'empty pairs skipped', rule: PATH_QUERY, request: path('/x?&a=1&&'), expect: { parsed_query: { a: ['1'] } } },
  { name: 'only the first ? splits', rule: PATH_QUERY, request: path('/x?a=b?c'), expect: { parsed_query: { a: ['b?c'] } } },
  // --- parsed_body / truncated_body
  {
    name: 'no body: parsed_body null, truncated_body false',
    rule: BODY,
    request: path('/'),
    expect: { parsed_body: null, truncated_body: false },
  },
  {
    name: 'JSON object body',
    rule: BODY,
    request: json('{"a":{"b":[1,"x",true,null]}}'),
    expect: { parsed_body: { a: { b: [1, 'x', true, null] } } },
  },
  { name: 'JSON scalar body', rule: BODY, request: json('"s"'), expect: { parsed_body: 's' } },
  {
    name: 'JSON content type with charset',
    rule: BODY,
    request: request({ headers: { 'content-type': 'application/json; charset=utf-8' }, body: '[1]' }),
    expect: { parsed_body: [1] },
  },
  {
    name: 'JSON content type matched by substring',
    rule: BODY,
    request: request({ headers: { 'content-type': 'application/vnd.api+json, application/json' }, body: '{}' }),
    expect: { parsed_body: {} },
  },
  {
    name: 'JSON from rawBody when body is empty',
    rule: BODY,
    request: request({ headers: { 'content-type': 'application/json' }, rawBody: Buffer.from('{"r":1}').toString('base64') }),
    expect: { parsed_body: { r: 1 } },
  },
  {
    name: 'body wins over rawBody',
    rule: BODY,
    request: request({
      headers: { 'content-type': 'application/json' },
      body: '{"b":1}',
      rawBody: Buffer.from('{"r":1}').toString('base64'),
    }),
    expect: { parsed_body: { b: 1 } },
  },
  { name: 'empty JSON body: null, not truncated', rule: BODY, request: json(''), expect: { parsed_body: null, truncated_body: false } },
  { name: 'JSON repeated key keeps the last', rule: BODY, request: json('{"a":1,"a":2}'), expect: { parsed_body: { a: 2 } } },
  {
    name: 'big integer kept exact',
    rule: BODY,
    request: json('{"n":12345678901234567890}'),
    expect: {},
    text: ['"n":12345678901234567890'],
  },
  { name: '2^53 + 1 kept exact', rule: BODY, request: json('{"n":9007199254740993}'), expect: {}, text: ['"n":9007199254740993'] },
  { name: '1.0 kept as written', rule: BODY, request: json('{"n":1.0}'), expect: {}, text: ['"n":1.0'] },
  { name: '-0 kept as written', rule: BODY, request: json('{"n":-0}'), expect: {}, text: ['"n":-0'] },
  { name: '1.5e300 kept as written', rule: BODY, request: json('{"n":1.5e300}'), expect: {}, text: ['"n":1.5e300'] },
  {
    name: 'content-length larger than the body: truncated',
    rule: TRUNCATED,
    request: json('{"a":', { 'content-length': '100' }),
    expect: { parsed_body: null, truncated_body: true },
  },
  {
    name: 'content-length equal to the body: parsed',
    rule: TRUNCATED,
    request: json('{"a":1}', { 'content-length': '7' }),
    expect: { parsed_body: { a: 1 }, truncated_body: false },
  },
  {
    name: 'content-length -1: parsed',
    rule: TRUNCATED,
    request: json('{}', { 'content-length': '-1' }),
    expect: { parsed_body: {}, truncated_body: false },
  },
  {
    name: 'x-envoy-auth-partial-body: true → truncated, not parsed',
    rule: BODY,
    request: json('{"a":', { 'x-envoy-auth-partial-body': 'true' }),
    expect: { parsed_body: null, truncated_body: true },
  },
  {
    name: 'partial-body header without content-length (chunked)',
    rule: BODY,
    request: json('{"cut', { 'x-envoy-auth-partial-body': 'true', 'transfer-encoding': 'chunked' }),
    expect: { parsed_body: null, truncated_body: true },
  },
  {
    name: 'partial-body header other than "true" is ignored',
    rule: BODY,
    request: json('{}', { 'x-envoy-auth-partial-body': 'TRUE' }),
    expect: { parsed_body: {}, truncated_body: false },
  },
  { name: 'form body → map of lists', rule: BODY, request: form('a=1&a=2&b=x+y'), expect: { parsed_body: { a: ['1', '2'], b: ['x y'] } } },
  { name: 'form body with escapes', rule: BODY, request: form('k%21=%E2%9C%93'), expect: { parsed_body: { 'k!': ['✓'] } } },
  { name: 'empty form body: null', rule: BODY, request: form(''), expect: { parsed_body: null } },
  {
    name: 'multipart text parts → map of lists',
    rule: BODY,
    request: multipart(part('a', 'one') + part('a', 'two') + part('b', 'x') + '--B0undary--\r\n'),
    expect: { parsed_body: { a: ['one', 'two'], b: ['x'] } },
  },
  {
    name: 'multipart JSON part decoded',
    rule: BODY,
    request: multipart(part('j', '{"k":[1,2]}', 'application/json') + '--B0undary--\r\n'),
    expect: { parsed_body: { j: [{ k: [1, 2] }] } },
  },
  {
    name: 'multipart JSON part keeps exact numbers',
    rule: BODY,
    request: multipart(part('j', '{"n":12345678901234567890}', 'application/json') + '--B0undary--\r\n'),
    expect: {},
    text: ['"n":12345678901234567890'],
  },
  {
    name: 'multipart part without a name skipped',
    rule: BODY,
    request: multipart(part(null, 'anon') + part('a', '1') + '--B0undary--\r\n'),
    expect: { parsed_body: { a: ['1'] } },
  },
  {
    name: 'multipart file part is its text',
    rule: BODY,
    request: multipart('--B0undary\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nfile\r\n--B0undary--\r\n'),
    expect: { parsed_body: { f: ['file'] } },
  },
  {
    name: 'multipart without a boundary: null',
    rule: BODY,
    request: request({ headers: { 'content-type': 'multipart/form-data' }, body: 'x' }),
    expect: { parsed_body: null, truncated_body: false },
  },
  {
    name: 'gRPC body with no descriptor set: null',
    rule: BODY,
    request: request({ path: '/pkg.Svc/Do', headers: { 'content-type': 'application/grpc' }, rawBody: 'AAAAAAA=' }),
    expect: { parsed_body: null },
  },
  {
    name: 'other content type: null',
    rule: BODY,
    request: request({ headers: { 'content-type': 'text/plain' }, body: '{"a":1}' }),
    expect: { parsed_body: null, truncated_body: false },
  },
  { name: 'no content type: null', rule: BODY, request: request({ body: '{"a":1}' }), expect: { parsed_body: null } },
  {
    name: 'body read from headers map only, never headerMap',
    rule: BODY,
    request: request({ headerMap: { headers: [{ key: 'content-type', value: 'application/json' }] }, body: '{"a":1}' }),
    expect: { parsed_body: null },
  },
];

interface RefusalCase {
  name: string;
  rule: string;
  request: Record<string, unknown> | Buffer;
  code: string;
  /** For parse errors: the peer's reason after "request_parse_error: ". */
  reason?: string;
}

const REFUSAL_CASES: RefusalCase[] = [
  {
    name: 'path with a bad escape',
    rule: PATH_QUERY,
    request: path('/a%zz'),
    code: 'ERR_REQUEST_PARSE',
    reason: 'invalid URL escape "%zz"',
  },
  { name: 'path with a cut escape', rule: PATH_QUERY, request: path('/a%4'), code: 'ERR_REQUEST_PARSE', reason: 'invalid URL escape "%4"' },
  {
    name: 'query with a ; separator',
    rule: PATH_QUERY,
    request: path('/x?a=1;b=2'),
    code: 'ERR_REQUEST_PARSE',
    reason: 'invalid semicolon separator in query',
  },
  {
    name: 'query with a bad escape in a key',
    rule: PATH_QUERY,
    request: path('/x?%zz=1'),
    code: 'ERR_REQUEST_PARSE',
    reason: 'invalid URL escape "%zz"',
  },
  {
    name: 'query with a bad escape in a value',
    rule: PATH_QUERY,
    request: path('/x?a=%G0'),
    code: 'ERR_REQUEST_PARSE',
    reason: 'invalid URL escape "%G0"',
  },
  {
    name: 'form body with a ; separator',
    rule: BODY,
    request: form('a=1;b=2'),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'invalid semicolon separator in query',
  },
  {
    name: 'form body with a bad escape',
    rule: BODY,
    request: form('a=%'),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'invalid URL escape "%"',
  },
  {
    name: 'invalid JSON body',
    rule: BODY,
    request: json('{"a" 1}'),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: "invalid character '1' after object key",
  },
  { name: 'JSON body with trailing data', rule: BODY, request: json('{} {}'), code: 'ERR_REQUEST_BODY_PARSE' },
  { name: 'whitespace-only JSON body', rule: BODY, request: json('  '), code: 'ERR_REQUEST_BODY_PARSE', reason: 'EOF' },
  {
    name: 'content-length not an integer',
    rule: TRUNCATED,
    request: json('{}', { 'content-length': 'ten' }),
    code: 'ERR_REQUEST_BODY_PARSE',
    reason: 'strconv.ParseInt: parsing "ten": invalid syntax',
  },
  {
    name: 'multipart JSON part with invalid JSON',
    rule: BODY,
    request: multipart(part('j', '{nope', 'application/json') + '--B0undary--\r\n'),
    code: 'ERR_REQUEST_BODY_PARSE',
  },
  {
    name: 'multipart cut before the closing boundary',
    rule: BODY,
    request: multipart(part('a', 'x').slice(0, -2)),
    code: 'ERR_REQUEST_BODY_PARSE',
  },
  // verdict's own refusals (the peer has no such bounds, or fails the RPC): coded, never evaluated
  { name: 'empty CheckRequest (no attributes)', rule: REQUEST_TO_INPUT, request: Buffer.alloc(0), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'truncated varint', rule: CHECK, request: Buffer.from([0x0a, 0x85]), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'length past the end', rule: CHECK, request: Buffer.from([0x0a, 0x10, 0x22]), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'invalid wire type 7', rule: CHECK, request: Buffer.from([0x0f, 0x00]), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'known field on the wrong wire type', rule: CHECK, request: Buffer.from(int(1, 5)), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'invalid UTF-8 in a string field', rule: CHECK, request: attrs(httpWire(len(4, [0x2f, 0xff]))), code: 'ERR_REQUEST_MALFORMED' },
  { name: 'unterminated group', rule: CHECK, request: Buffer.from([...tag(20, 3), ...int(1, 1)]), code: 'ERR_REQUEST_MALFORMED' },
  {
    name: 'JSON body nested past limits.maxInputDepth',
    rule: BODY,
    request: json('['.repeat(5000) + ']'.repeat(5000)),
    code: 'ERR_REQUEST_TOO_DEEP',
  },
  { name: 'too many query parameters', rule: PATH_QUERY, request: path(`/x?${'a=1&'.repeat(2000)}`), code: 'ERR_REQUEST_TOO_MANY_PARAMS' },
];

function at(doc: unknown, dotted: string): unknown {
  let node: unknown = doc;
  for (const key of dotted.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.prototype.hasOwnProperty.call(node, key)) return ABSENT;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

describe('opa-envoy-plugin input conformance over the real gRPC server', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const send = (r: Record<string, unknown> | Buffer): Promise<CheckResponse> => (Buffer.isBuffer(r) ? client.checkRaw(r) : client.check(r));

  beforeAll(async () => {
    const bundle = await buildTestBundle({ 'policy.rego': ECHO_POLICY });
    verdict = await startTestVerdict([`policy.bundle=${bundle}`, 'decision.reasonHeader=x-verdict-reason']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`, { 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('has at least 80 named cases', () => {
    expect(INPUT_CASES.length + REFUSAL_CASES.length).toBeGreaterThanOrEqual(80);
  });

  for (const c of INPUT_CASES) {
    it(`${c.name} (${c.rule})`, async () => {
      const res = await send(c.request);
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('DENIED_BY_POLICY');
      const text = res.deniedResponse?.body ?? '';
      const input = JSON.parse(text) as unknown;
      for (const [p, want] of Object.entries(c.expect)) expect(at(input, p), p).toEqual(want);
      for (const t of c.text ?? []) expect(text).toContain(t);
    });
  }

  for (const c of REFUSAL_CASES) {
    it(`refuses: ${c.name} (${c.rule})`, async () => {
      const res = await send(c.request);
      expect(res.status?.code).toBe(7);
      expect(res.deniedResponse?.status?.code).toBe(400);
      expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe(c.code);
      const body = res.deniedResponse?.body ?? '';
      if (c.code === 'ERR_REQUEST_PARSE' || c.code === 'ERR_REQUEST_BODY_PARSE') {
        // internal/internal.go check + internal/errors.go Error: "request_parse_error: <reason>", both places.
        expect(body).toMatch(/^request_parse_error: /);
        expect(res.status?.message).toBe(body);
        if (c.reason !== undefined) expect(body).toBe(`request_parse_error: ${c.reason}`);
      } else {
        expect(body).toBe(''); // the policy (which echoes its input) never ran
      }
    });
  }

  it('after every refusal the next good request is answered by the policy', async () => {
    const res = await send(path('/after'));
    expect((JSON.parse(res.deniedResponse?.body ?? '{}') as { parsed_path: string[] }).parsed_path).toEqual(['after']);
  });
});
