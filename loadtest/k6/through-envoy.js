// k6: HTTP requests through an Envoy sidecar whose ext_authz filter asks verdict (envoy/sidecar-grpc.yaml),
// at a constant arrival rate, with latency thresholds. Compare against the same Envoy with the check
// disabled to see what verdict adds (the bench does exactly that with its own harness).
//
//   k6 run -e ENVOY=http://127.0.0.1:10000 -e RATE=1000 loadtest/k6/through-envoy.js
import http from 'k6/http';
import { check } from 'k6';

const base = __ENV.ENVOY || 'http://127.0.0.1:10000';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    public_reads: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 1000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 50,
      maxVUs: 300,
      exec: 'publicRead',
    },
    admin_denied: {
      executor: 'constant-arrival-rate',
      rate: 20,
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 5,
      maxVUs: 20,
      exec: 'adminDenied',
    },
  },
  thresholds: {
    'http_req_duration{scenario:public_reads}': ['p(99)<10'],
    checks: ['rate>0.999'],
  },
};

export function publicRead() {
  const res = http.get(`${base}/public/catalog/items?page=2`);
  check(res, { 'allowed: 200': (r) => r.status === 200 });
}

export function adminDenied() {
  const res = http.get(`${base}/admin/users`);
  check(res, {
    'denied: 403': (r) => r.status === 403,
    'reason header': (r) => r.headers['X-Verdict-Reason'] === 'DENIED_BY_POLICY',
  });
}
