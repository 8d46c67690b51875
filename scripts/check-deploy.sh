#!/usr/bin/env bash
# make deploy-check: validates every deployment artifact with the real tools, installing them when
# missing (idempotent: a second run installs nothing).
#
#   1 hadolint + checkov on the Dockerfile     6 promtool: rules, rule unit tests, PromQL of the
#   2 docker-compose config (+ promtool          dashboard and the Argo Rollouts analysis
#     check config of its Prometheus)          7 a real nats-server with infra/nats: per-identity
#   3 Kubernetes: overlays rendered, strict      permissions (and the Rust client end to end)
#     schemas (kubernetes-validate), copies    8 zizmor on .github (offline, pedantic)
#     in sync with their sources               9 k6 for 30 s against `inventory up`, canary
#   4 checkov on the rendered manifests          thresholds (skip: DEPLOY_CHECK_SKIP_K6=1)
#   5 Rego policies (regorus, tools/policy-check): unit tests, own manifests pass, known-bad ones denied
#
# Exits non-zero if any check fails, after running all of them; ends with "N passed, M failed".
# A failing check prints its output; DEPLOY_CHECK_VERBOSE=1 prints it for every check.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${DEPLOY_VENV:-$root/.deps/deploy-venv}
py=$venv/bin/python
req=$root/tests/deploy/requirements.txt
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
export LD_LIBRARY_PATH="$root/.deps/duckdb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
start_all=$(date +%s)

# --- tools ---------------------------------------------------------------------------------------
missing=""
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=" nats-server"
command -v promtool >/dev/null || missing+=" prometheus"
command -v docker-compose >/dev/null || missing+=" docker-compose"
command -v gcc >/dev/null || missing+=" gcc"
command -v curl >/dev/null || missing+=" curl"
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=" python3-venv"
if [[ -n "$missing" ]]; then
  echo "deploy-check: installing from Debian:$missing"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null \
    || { echo "deploy-check: FAIL: apt-get install$missing" >&2; exit 1; }
fi
stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "deploy-check: installing the deploy tools into $venv (tests/deploy/requirements.txt)"
  { [[ -x "$py" ]] || python3 -m venv "$venv"; } \
    && "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" \
    && rm -f "$venv"/.installed-* && touch "$stamp" \
    || { echo "deploy-check: FAIL: pip install -r $req" >&2; exit 1; }
fi
export PATH="$venv/bin:$PATH"

# --- runner --------------------------------------------------------------------------------------
tmp=$(mktemp -d /tmp/deploy-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0; failures=()
run() {  # run NAME COMMAND...: output to a log, shown only on failure
  local name=$1; shift
  local t0 log="$tmp/$(echo "$name" | tr -c 'a-zA-Z0-9' _).log"
  t0=$(date +%s)
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); printf '  PASS %-62s %4ss\n' "$name" "$(( $(date +%s) - t0 ))"
    if [[ "${DEPLOY_CHECK_VERBOSE:-}" == 1 ]]; then sed 's/^/       | /' "$log"; fi
  else
    failed=$((failed + 1)); failures+=("$name")
    printf '  FAIL %-62s %4ss\n' "$name" "$(( $(date +%s) - t0 ))"
    sed 's/^/       | /' "$log" | tail -n 60
  fi
}

rendered=()
render_all() {
  local o
  for o in infra/k8s/overlays/*/; do
    o=${o%/}
    "$py" tests/deploy/render.py "$o" > "$tmp/rendered-$(basename "$o").yaml" || return 1
    echo "rendered $o: $(grep -c '^kind:' "$tmp/rendered-$(basename "$o").yaml") objects"
  done
}

k8s_extra=(infra/argocd/application.yaml infra/rollouts/analysis-template.yaml policy/kyverno/*.yaml policy/sigstore/*.yaml)

checkov_k8s() {
  checkov --framework kubernetes --skip-download --compact --quiet --output cli \
    $(printf -- '-f %s ' "$tmp"/rendered-*.yaml "${k8s_extra[@]}") 2>&1 | grep -v '^\s*$'
  return "${PIPESTATUS[0]}"
}

sync_checks() {  # copies embedded in manifests must equal their sources; renders must propagate
  "$py" - "$tmp" <<'PY'
import json, os, re, subprocess, sys, tempfile, shutil, glob
from pathlib import Path
import yaml
tmp = Path(sys.argv[1])
docs = {}
for f in sorted(tmp.glob("rendered-*.yaml")):
    docs[f.name] = [d for d in yaml.safe_load_all(f.read_text()) if d]
def find(ds, kind, name):
    return next(d for d in ds if d["kind"] == kind and d["metadata"]["name"] == name)
bad = 0
for fname, ds in docs.items():
    cm = find(ds, "ConfigMap", "inventory-nats-config")
    if cm["data"]["auth.conf"] != Path("infra/nats/auth.conf").read_text():
        print(f"{fname}: ConfigMap inventory-nats-config auth.conf differs from infra/nats/auth.conf"); bad += 1
    pr = find(ds, "PrometheusRule", "asset-inventory")
    if pr["spec"] != yaml.safe_load(Path("infra/prometheus/rules.yml").read_text()):
        print(f"{fname}: PrometheusRule spec differs from infra/prometheus/rules.yml"); bad += 1
    dash = find(ds, "ConfigMap", "asset-inventory-dashboard")
    if json.loads(dash["data"]["asset-inventory.json"]) != json.loads(Path("infra/grafana/asset-inventory.json").read_text()):
        print(f"{fname}: dashboard ConfigMap differs from infra/grafana/asset-inventory.json"); bad += 1
    # The clustered nats.conf parses (with the ConfigMap's auth.conf) on the real nats-server.
    d = Path(tempfile.mkdtemp(dir=tmp))
    for k, v in cm["data"].items():
        (d / k).write_text(v)
    # The environment the NATS pods get: values and ConfigMap keys as rendered (the collectors'
    # sweep subjects), a bcrypt hash for each Secret key, the pod name for the fieldRef.
    env = dict(os.environ)
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in ds if d["kind"] == "ConfigMap"}
    sts = next(c for c in find(ds, "StatefulSet", "inventory-nats")["spec"]["template"]["spec"]["containers"]
               if c["name"] == "nats")
    for e in sts.get("env", []):
        ref = e.get("valueFrom", {})
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "configMapKeyRef" in ref:
            env[e["name"]] = str(cms.get(ref["configMapKeyRef"]["name"], {}).get(ref["configMapKeyRef"]["key"], ""))
        elif "secretKeyRef" in ref:
            env[e["name"]] = '"$2a$11$3uRXhQ3bKOHRxN4vMhWzxeNYyQHbq4qgOt8RFPdvm3YxLu3aQW1Mm"'
        elif "fieldRef" in ref:
            env[e["name"]] = "inventory-nats-0"
    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
    # Acknowledged writes are fsynced (DESIGN section 4). `sync_interval` exists from nats-server
    # 2.10 (the image's version); an older local server (Debian's 2.9) parses the rest without it.
    conf = (d / "nats.conf").read_text()
    if not re.search(r"jetstream \{[^}]*\n\s*sync_interval: always\n", conf):
        print(f"{fname}: nats.conf's jetstream block lacks sync_interval: always"); bad += 1
    ver = subprocess.run([nats, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v(\d+)\.(\d+)", ver)
    if m and (int(m[1]), int(m[2])) < (2, 10):
        (d / "nats.conf").write_text(re.sub(r"(?m)^\s*sync_interval:.*\n", "", conf))
    r = subprocess.run([nats, "-c", str(d / "nats.conf"), "-t"], env=env, capture_output=True, text=True)
    if r.returncode:
        print(f"{fname}: nats.conf of the ConfigMap does not parse: {r.stderr.strip()}"); bad += 1
    # Own images: every one by the overlay's digest, and the PreSync hook verifies that image.
    own = set()
    for x in ds:
        spec = x.get("spec", {})
        ps = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") or spec.get("template", {}).get("spec")
        for c in (ps or {}).get("containers", []):
            if c["image"].startswith("ghcr.io/companyos/"):
                own.add(c["image"])
    job = find(ds, "Job", "verify-image-signature")["spec"]["template"]["spec"]
    refs = {e["value"] for c in job["initContainers"] + job["containers"] for e in c["env"] if e["name"] == "IMAGE_REF"}
    if len(own) != 1 or refs != own:
        print(f"{fname}: own images {own} and the verified IMAGE_REFs {refs} must be one and the same digest"); bad += 1
# The renderer applies `images:` and `replacements:` as kustomize does: a changed digest reaches
# every container of ours and the PreSync verification.
work = Path(tempfile.mkdtemp(dir=tmp))
shutil.copytree("infra", work / "infra")
k = work / "infra/k8s/overlays/production/kustomization.yaml"
k.write_text(k.read_text().replace("sha256:" + "0" * 64, "sha256:" + "ab" * 32))
out = subprocess.run([sys.executable, "tests/deploy/render.py", str(k.parent)], capture_output=True, text=True, check=True).stdout
if out.count("sha256:" + "ab" * 32) != 10 or "sha256:" + "0" * 64 in out:
    print("render: a new digest in the overlay does not reach the API, the 7 CronJobs (6 collectors, checkpoint) and the PreSync hook"); bad += 1
print("copies in sync, nats.conf parses, digests propagate" if not bad else f"{bad} problem(s)")
sys.exit(1 if bad else 0)
PY
}

promql_syntax() {  # the dashboard's and the canary analysis' queries parse (promtool check rules)
  "$py" - "$tmp/promql-rules.yml" <<'PY'
import json, re, sys
from pathlib import Path
import yaml
rules = []
dash = json.loads(Path("infra/grafana/asset-inventory.json").read_text())
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        rules.append({"record": f"check:dashboard_panel_{p['id']}_{t['refId']}", "expr": t["expr"].replace("$__rate_interval", "5m")})
at = yaml.safe_load(Path("infra/rollouts/analysis-template.yaml").read_text())
for m in at["spec"]["metrics"]:
    q = re.sub(r"\{\{\s*args\.[\w-]+\s*\}\}", "abc123", m["provider"]["prometheus"]["query"])
    rules.append({"record": f"check:analysis_{m['name'].replace('-', '_')}", "expr": q})
Path(sys.argv[1]).write_text(yaml.safe_dump({"groups": [{"name": "promql-syntax", "rules": rules}]}))
print(f"{len(rules)} queries")
PY
  promtool check rules "$tmp/promql-rules.yml"
}

echo "deploy-check: tools: $(hadolint --version | head -1); $(checkov --version) checkov; kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1); $(zizmor --version); $(k6 version 2>/dev/null | head -1 | cut -d' ' -f1-2); $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3); nats-server $(nats-server --version 2>/dev/null || /usr/sbin/nats-server --version); $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

echo "1. container"
run "hadolint Dockerfile" hadolint Dockerfile
run "checkov Dockerfile" checkov --framework dockerfile -f Dockerfile --skip-download --compact --quiet

echo "2. docker-compose"
run "docker-compose config" docker-compose -f docker-compose.yml config -q
run "docker-compose --profile cloud config" docker-compose -f docker-compose.yml --profile cloud config -q
run "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml

echo "3. Kubernetes manifests"
run "render overlays (tests/deploy/render.py)" render_all
# The renderer applies only what the kustomizations use; where a real kustomize exists (kubectl's
# built-in one), both must produce the same objects.
kustomize_same() {
  local o
  for o in infra/k8s/overlays/*/; do
    o=${o%/}
    kubectl kustomize "$o" > "$tmp/kustomize-$(basename "$o").yaml" || return 1
    "$py" - "$tmp/kustomize-$(basename "$o").yaml" "$tmp/rendered-$(basename "$o").yaml" <<'PY' || return 1
import sys, yaml
def objs(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}
a, b = objs(sys.argv[1]), objs(sys.argv[2])
diff = sorted(set(a) ^ set(b)) + sorted(k for k in a if k in b and a[k] != b[k])
if diff:
    sys.exit(f"kubectl kustomize and render.py differ on {diff[:5]}")
print(f"{sys.argv[2]}: {len(a)} objects, identical to kubectl kustomize")
PY
  done
}
if kubectl kustomize --help >/dev/null 2>&1; then
  run "render.py equals kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/Kustomize Version: //p'))" kustomize_same
else
  echo "  SKIP render.py vs kubectl kustomize (no kubectl with kustomize on this machine)"
fi
run "kubernetes-validate --strict (rendered, argocd, rollouts, policies)" \
  kubernetes-validate --strict --quiet "$tmp"/rendered-*.yaml "${k8s_extra[@]}"
run "embedded copies in sync, nats.conf parses, digests propagate" sync_checks
run "collector scopes = the NATS sweep subjects they are bound to (overlays, compose)" \
  "$py" tests/deploy/scope_bindings.py "$tmp"/rendered-*.yaml

echo "4. checkov"
run "checkov kubernetes (rendered, argocd, rollouts, policies)" checkov_k8s

echo "5. policies"
run "rego unit tests, own manifests pass, known-bad denied (regorus)" cargo run -q -p inventory-policy-check -- "$tmp"/rendered-*.yaml

echo "6. Prometheus rules"
run "promtool check rules infra/prometheus/rules.yml" promtool check rules infra/prometheus/rules.yml
run "promtool test rules (alerts fire and resolve)" bash -c 'cd infra/prometheus && promtool test rules rules.test.yml'
run "PromQL of the dashboard and the canary analysis" promql_syntax

echo "7. NATS permissions"
run "nats-server + infra/nats: per-identity permissions" "$py" tests/deploy/nats_permissions.py

echo "8. GitHub workflows"
run "zizmor .github (offline, pedantic)" zizmor --offline --strict-collection --persona=pedantic --no-progress .github

echo "9. k6 smoke"
if [[ "${DEPLOY_CHECK_SKIP_K6:-}" == 1 ]]; then
  echo "  SKIP k6 smoke (DEPLOY_CHECK_SKIP_K6=1)"
else
  run "k6 30 s against inventory up (error rate <= 0.2 %, p95 <= 300 ms)" tests/deploy/k6_smoke.sh
fi

echo "deploy-check: $(( $(date +%s) - start_all ))s"
if (( failed )); then
  echo "deploy-check: failed: ${failures[*]}" >&2
fi
echo "deploy-check: $passed passed, $failed failed"
(( failed == 0 ))
