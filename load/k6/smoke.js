// k6 smoke test of the asset-inventory API with the starter kit's canary thresholds:
// error rate <= 0.2 % and p95 latency <= 300 ms, on /healthz and the main list routes.
//
//   BASE_URL=http://127.0.0.1:8080 k6 run load/k6/smoke.js     (30 s, 4 virtual users)
//
// Run by tests/deploy/k6_smoke.sh (make deploy-check) against `inventory up`, and by CI.
import http from 'k6/http';
import { check, group, sleep } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const TOKEN = __ENV.API_TOKEN || '';

export const options = {
  vus: Number(__ENV.VUS || 4),
  duration: __ENV.DURATION || '30s',
  thresholds: {
    // Canary thresholds (starter kit): abort and fail on breach.
    http_req_failed: [{ threshold: 'rate<=0.002', abortOnFail: true, delayAbortEval: '10s' }],
    http_req_duration: ['p(95)<=300'],
    // Every route on its own as well, so one slow route cannot hide behind fast probes.
    'http_req_duration{route:healthz}': ['p(95)<=300'],
    'http_req_duration{route:accounts}': ['p(95)<=300'],
    'http_req_duration{route:monitoring}': ['p(95)<=300'],
    'http_req_duration{route:assets}': ['p(95)<=300'],
    'http_req_duration{route:collectors}': ['p(95)<=300'],
    checks: ['rate>=0.998'],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

const params = (route) => ({
  headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
  tags: { route },
  timeout: '5s',
});

const routes = [
  ['healthz', '/healthz'],
  ['accounts', '/api/v1/accounts?provider=aws'],
  ['monitoring', '/api/v1/monitoring?kind=prometheus'],
  ['assets', '/api/v1/assets?limit=50'],
  ['collectors', '/api/v1/collectors'],
];

export function setup() {
  const res = http.get(`${BASE_URL}/readyz`, { timeout: '5s' });
  if (res.status !== 200) {
    throw new Error(`${BASE_URL}/readyz answered ${res.status}: the API is not ready`);
  }
}

export default function () {
  for (const [route, path] of routes) {
    group(route, () => {
      const res = http.get(`${BASE_URL}${path}`, params(route));
      check(res, {
        [`${route}: status 200`]: (r) => r.status === 200,
        [`${route}: JSON`]: (r) => (r.headers['Content-Type'] || '').includes('json') || route === 'healthz',
      });
    });
  }
  sleep(0.2);
}
