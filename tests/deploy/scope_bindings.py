#!/usr/bin/env python3
"""Each collector's NATS identity is bound to the sweep subject of the scope it sweeps.

infra/nats/auth.conf lets collector-<provider> publish one sweep subject,
$NATS_SWEEP_SUBJECT_COLLECTOR_<PROVIDER>, which the NATS server gets from its environment. If that
subject is not inventory.sweep.<provider>.<token of the collector's configured scope>, the
collector's sweeps are refused by NATS. This checks, without a cluster, that every place that runs
both agrees:
  - each rendered Kubernetes overlay (tests/deploy/render.py output, given as arguments): the
    CronJob inventory-collect-<provider>'s scope setting (after configMapKeyRef) against the NATS
    StatefulSet's NATS_SWEEP_SUBJECT_COLLECTOR_<PROVIDER>; the AWS CronJob must name its
    organisation (AWS_ORG_ID), since a learnt scope cannot be bound in advance;
  - docker-compose.yml (`docker-compose --profile cloud config`, with the defaults and with the
    scope variables set): each collect-<provider> service against the nats service;
  - and in both, every variable auth.conf references is supplied to the server (for compose, the
    real nats-server parses infra/nats with the nats service's environment).
The scope rules are producers/src/sources/*.rs `fn scope` with src/cli.rs's settings.

    python tests/deploy/scope_bindings.py RENDERED.yaml...      (exit 1 on any mismatch)
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import yaml

from subjects import sweep_subject  # tests/deploy/subjects.py

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ["aws", "gcp", "azure", "prometheus", "grafana", "file"]
AUTH_VARS = sorted(set(re.findall(r"\$(NATS_[A-Z0-9_]+)", (ROOT / "infra/nats/auth.conf").read_text())))
problems: list[str] = []


def flag(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def scope_of(provider: str, env: dict, args: list[str], where: str) -> str | None:
    """The scope the collector will sweep, from its settings (None: not known in advance)."""
    get = lambda k: (env.get(k) or "").strip() or None  # noqa: E731 - empty is unset (env_opt)
    if provider == "aws":
        org = get("AWS_ORG_ID")
        if org is not None and not re.fullmatch(r"o-[a-z0-9]{10,32}", org):
            problems.append(f"{where}: AWS_ORG_ID {org!r} is not an organisation id (o-...)")
        return org
    if provider == "gcp":
        return get("GCP_SCOPE") or "gcp-default"
    if provider == "azure":
        return get("AZURE_SCOPE") or get("AZURE_TENANT_ID")
    if provider == "prometheus":
        return flag(args, "--name") or get("PROM_NAME") or "prom-default"
    if provider == "grafana":
        return flag(args, "--name") or get("GRAFANA_NAME") or "grafana-default"
    path = flag(args, "--file") or get("INVENTORY_ASSETS_FILE") or "examples/assets.yaml"
    return PurePosixPath(path).stem


def compare(where: str, provider: str, scope: str | None, server_env: dict) -> None:
    var = f"NATS_SWEEP_SUBJECT_COLLECTOR_{provider.upper()}"
    got = server_env.get(var)
    if scope is None:
        problems.append(f"{where}: the {provider} collector's scope is not configured (learnt at run time), "
                        f"so {var} cannot be bound to it")
        return
    want = sweep_subject(provider, scope)
    if got != want:
        problems.append(f"{where}: {provider} collector sweeps scope {scope!r} ({want}) but NATS lets "
                        f"collector-{provider} publish {var}={got!r}")


def server_vars(where: str, server_env: dict) -> None:
    missing = [v for v in AUTH_VARS if v not in server_env]
    if missing:
        problems.append(f"{where}: infra/nats/auth.conf references {missing}, not given to the server")


# --- Kubernetes --------------------------------------------------------------------------------
def k8s_env(container: dict, configmaps: dict, where: str) -> dict:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            data = configmaps.get(ref["name"], {})
            if ref["key"] not in data:
                if not ref.get("optional"):
                    problems.append(f"{where}: {e['name']} refers to ConfigMap {ref['name']} key {ref['key']}, "
                                    "which the overlay does not define")
                continue
            env[e["name"]] = str(data[ref["key"]])
        else:
            env[e["name"]] = "<from the cluster>"  # secrets, fieldRefs: present, value unknown here
    return env


def check_overlay(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    before = len(problems)
    nats = by.get(("StatefulSet", "inventory-nats"))
    if nats is None:
        problems.append(f"{path.name}: no StatefulSet inventory-nats")
        return
    server = k8s_env(next(c for c in nats["spec"]["template"]["spec"]["containers"] if c["name"] == "nats"),
                     configmaps, f"{path.name} StatefulSet inventory-nats")
    server_vars(f"{path.name} StatefulSet inventory-nats", server)
    for p in PROVIDERS:
        where = f"{path.name} CronJob inventory-collect-{p}"
        cj = by.get(("CronJob", f"inventory-collect-{p}"))
        if cj is None:
            problems.append(f"{where}: missing")
            continue
        c = next(c for c in cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] if c["name"] == "collect")
        env = {k: v for k, v in k8s_env(c, configmaps, where).items() if v != "<from the cluster>"}
        compare(where, p, scope_of(p, env, c.get("args", []), where), server)
    if len(problems) == before:
        print(f"{path.name}: {len(PROVIDERS)} collector CronJobs bound to their scopes' sweep subjects")


# --- docker-compose ------------------------------------------------------------------------------
def check_compose(label: str, overrides: dict) -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        problems.append("docker-compose not found")
        return
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ORG_ID", "GCP_SCOPE", "AZURE_SCOPE", "AZURE_TENANT_ID")}
    env.update(overrides)
    r = subprocess.run([exe, "-f", "docker-compose.yml", "--profile", "cloud", "config"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        problems.append(f"docker-compose config ({label}) failed: {r.stderr.strip()[-500:]}")
        return
    services = yaml.safe_load(r.stdout)["services"]
    before = len(problems)

    def environment(svc: dict) -> dict:
        e = svc.get("environment") or {}
        if isinstance(e, list):
            e = dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
        return {k: "" if v is None else str(v) for k, v in e.items()}

    server = environment(services["nats"])
    server_vars(f"docker-compose ({label}) nats", server)
    # The nats service's configuration parses with exactly that environment.
    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
    t = subprocess.run([nats, "-c", str(ROOT / "infra/nats/nats-server.conf"), "-t"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("NATS_")} | server)
    if t.returncode:
        problems.append(f"docker-compose ({label}) nats: infra/nats/nats-server.conf does not parse with its "
                        f"environment: {(t.stderr or t.stdout).strip()[-500:]}")
    for p in PROVIDERS:
        where = f"docker-compose ({label}) collect-{p}"
        svc = services.get(f"collect-{p}")
        if svc is None:
            problems.append(f"{where}: missing")
            continue
        env = environment(svc)
        scope = scope_of(p, env, svc.get("command") or [], where)
        if p == "aws" and scope is None:
            scope = "unknown"  # unset: learnt at start, "unknown" until then (documented in the file)
        compare(where, p, scope, server)
    if len(problems) == before:
        print(f"docker-compose ({label}): {len(PROVIDERS)} collector services bound to their scopes' sweep subjects")


def main() -> int:
    for f in sys.argv[1:]:
        check_overlay(Path(f))
    check_compose("defaults", {})
    check_compose("scopes set", {"AWS_ORG_ID": "o-zyx9876543", "GCP_SCOPE": "org-42", "AZURE_SCOPE": "tenant-42"})
    for p in problems:
        print("MISMATCH " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
