#!/usr/bin/env bash
# k6 smoke test: starts the whole pipeline the way `make run` does (`inventory up`), on loopback
# ports of its own, with its own data dir and its own nats-server (never the one on 4222), waits
# for /readyz, runs load/k6/smoke.js for 30 s with the canary thresholds, and stops everything.
# Also checks the container's HEALTHCHECK probe (deploy/healthcheck) against the live API.
#
#   tests/deploy/k6_smoke.sh        (needs the inventory binary: debug or release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
venv=${DEPLOY_VENV:-$root/.deps/deploy-venv}
target=${CARGO_TARGET_DIR:-$root/target}
export LD_LIBRARY_PATH="$root/.deps/duckdb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

bin=""
for b in "$target/release/inventory" "$target/debug/inventory"; do
  if [[ -x "$b" ]]; then bin=$b; break; fi
done
if [[ -z "$bin" ]]; then
  echo "k6-smoke: building the inventory binary (cargo build --bin inventory)"
  cargo build --quiet --bin inventory
  bin="$target/debug/inventory"
fi

read -r nats_port api_port prom_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)
data=$(mktemp -d /tmp/inventory-k6.XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT INT TERM

api="http://127.0.0.1:$api_port"
echo "k6-smoke: $bin up (NATS 127.0.0.1:$nats_port, API $api, Prometheus 127.0.0.1:$prom_port, data $data)"
env -u GRAFANA_URL -u GRAFANA_TOKEN -u NATS_USER -u NATS_PASSWORD -u NATS_TOKEN -u NATS_CREDS \
  NATS_URL="nats://127.0.0.1:$nats_port" \
  INVENTORY_LISTEN="127.0.0.1:$api_port" \
  INVENTORY_UP_PROMETHEUS_LISTEN="127.0.0.1:$prom_port" \
  INVENTORY_DATA_DIR="$data" \
  INVENTORY_DB="$data/api.duckdb" \
  INVENTORY_ASSETS_FILE="$root/examples/assets.yaml" \
  INVENTORY_API_TOKENS="" \
  INVENTORY_LOG=warn \
  "$bin" up > "$data/up.log" 2>&1 &
pid=$!

ready=""
for _ in $(seq 1 240); do
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  if curl -fsS -m 2 "$api/readyz" > /dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
if [[ -z "$ready" ]]; then
  echo "k6-smoke: FAIL: the API did not become ready within 120 s; its log:" >&2
  tail -n 40 "$data/up.log" >&2 || true
  exit 1
fi
# Let the first sweeps land so the list routes return data.
for _ in $(seq 1 30); do
  if curl -fsS -m 2 "$api/api/v1/accounts?provider=aws" | grep -q '"aws'; then break; fi
  sleep 1
done

# The image's HEALTHCHECK probe, built as the Dockerfile builds it.
gcc -Os -static -Wall -o "$data/healthcheck" deploy/healthcheck/healthcheck.c
"$data/healthcheck" "$api_port" /healthz || { echo "k6-smoke: FAIL: healthcheck probe refused a healthy API" >&2; exit 1; }
"$data/healthcheck" "$api_port" /readyz || { echo "k6-smoke: FAIL: healthcheck probe refused /readyz" >&2; exit 1; }
if "$data/healthcheck" "$nats_port" /healthz 2>/dev/null; then
  echo "k6-smoke: FAIL: healthcheck probe accepted a port that is not the API" >&2; exit 1
fi
echo "k6-smoke: healthcheck probe ok (200 on /healthz and /readyz, refuses a non-API port)"

echo "k6-smoke: k6 run load/k6/smoke.js for 30 s"
K6_NO_USAGE_REPORT=true BASE_URL="$api" "$venv/bin/k6" run --quiet --no-color load/k6/smoke.js
echo "k6-smoke: passed"
