// k6: Envoy's Check call straight at verdict over gRPC, at a constant arrival rate (no coordinated
// omission: k6 starts iterations on schedule whether or not earlier ones finished).
//
//   k6 run -e TARGET=127.0.0.1:9191 -e PROTO_ROOT=node_modules/@grpc/grpc-js-xds/deps -e RATE=2000 loadtest/k6/check-grpc.js
//
// PROTO_ROOT holds envoy-api, xds, googleapis and protoc-gen-validate (the Envoy API protos verdict
// itself loads from @grpc/grpc-js-xds). The same scenarios run here through `npm run bench` (ghz).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const root = __ENV.PROTO_ROOT || 'node_modules/@grpc/grpc-js-xds/deps';
const client = new grpc.Client();
client.load(
  [`${root}/envoy-api`, `${root}/xds`, `${root}/googleapis`, `${root}/protoc-gen-validate`],
  'envoy/service/auth/v3/external_auth.proto',
);

const rate = Number(__ENV.RATE || 2000);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    allowed: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 50,
      maxVUs: 400,
      exec: 'allowed',
    },
    denied: {
      executor: 'constant-arrival-rate',
      rate: Math.max(1, Math.floor(rate / 10)),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 10,
      maxVUs: 100,
      exec: 'denied',
    },
  },
  thresholds: {
    grpc_req_duration: ['p(99)<5'],
    checks: ['rate>0.999'],
    dropped_iterations: ['count<10'],
  },
};

/** @param {string} method @param {string} path */
function checkRequest(method, path) {
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.9', port_value: 8080 } } },
      request: { http: { method, path, host: 'api.example.org', headers: { ':path': path, ':method': method } } },
    },
  };
}

/**
 * google.rpc.Status code inside the CheckResponse (0 allow, 7 deny); -1 when there is no message.
 * @param {import('k6/net/grpc').Response} res
 */
function rpcCode(res) {
  const message = /** @type {{ status?: { code?: number } } | null} */ (res.message);
  if (message === null) return -1;
  return message.status && message.status.code ? message.status.code : 0;
}

let connected = false;
function connect() {
  if (!connected) {
    client.connect(__ENV.TARGET || '127.0.0.1:9191', { plaintext: true });
    connected = true;
  }
}

export function allowed() {
  connect();
  const res = client.invoke('envoy.service.auth.v3.Authorization/Check', checkRequest('GET', '/public/catalog/items'));
  check(res, {
    'gRPC OK': (r) => r.status === grpc.StatusOK,
    'allowed (rpc status 0)': (r) => rpcCode(r) === 0,
  });
}

export function denied() {
  connect();
  const res = client.invoke('envoy.service.auth.v3.Authorization/Check', checkRequest('DELETE', '/admin/users'));
  check(res, {
    'gRPC OK': (r) => r.status === grpc.StatusOK,
    'denied (rpc status 7)': (r) => rpcCode(r) === 7,
  });
}
