#!/usr/bin/env python3
"""Acceptance 4: the shipped NATS configuration (infra/nats/nats-server.conf + auth.conf) on a real
nats-server gives every identity exactly the subjects it needs.

Starts its own nats-server (free loopback ports, temporary store; never the server on 4222) with
random passwords and each collector identity bound to one scope (SCOPES below: the server gets
NATS_SWEEP_SUBJECT_COLLECTOR_* as Kubernetes and compose give it), then with nats-py:
  - collector-aws may publish to AWS asset subjects and to its own scope's sweep subject, and is
    refused another AWS scope's sweep subject, the legacy inventory.sweep.aws and GCP subjects;
  - every collector may publish its own scope's sweep subject and nothing else of inventory.sweep;
  - collector-prometheus (issue 9, acceptance 1) is refused every AWS asset and sweep subject and
    the legacy inventory.sweep.prometheus;
  - nobody may publish a legacy sweep subject inventory.sweep.<provider>;
  - api (the reader) is refused every write: asset and sweep subjects, stream delete/purge/update,
    message delete; it may read (stream info, message get);
  - api-writer may declare monitoring endpoints only; subscriber may only subscribe;
  - nobody may delete or purge the stream; a wrong password is refused.
Then, when the inventory binary is built, end to end with the real Rust client: `inventory serve`
as api becomes ready (its JetStream reads are all allowed), `inventory collect prometheus` as
collector-prometheus completes a sweep of its bound scope that the API then lists (that scope's
token is a hash, so the binary's subject token and the one docs/runbook.md computes must agree),
the same collector with another endpoint name cannot record its sweep, `inventory collect file`
as collector-file records its sweep (scope = the file's stem), and POST /api/v1/monitoring
through the api reader identity is refused while api-writer's is recorded.

    .deps/deploy-venv/bin/python tests/deploy/nats_permissions.py     (exit 1 on any failure)

(nats-py as in the project's .venv, plus bcrypt: tests/deploy/requirements.txt.)
"""
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import nats
from nats.js.api import StreamConfig, StorageType

from subjects import subject_token, sweep_subject  # tests/deploy/subjects.py

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "infra" / "nats" / "nats-server.conf"
USERS = ["collector-aws", "collector-gcp", "collector-azure", "collector-prometheus",
         "collector-grafana", "collector-file", "api", "api-writer", "subscriber", "checkpoint"]
PROVIDERS = ["aws", "gcp", "azure", "prometheus", "grafana", "file"]
# The one scope each collector identity is bound to here (as ConfigMap inventory-collector-scopes
# binds them on Kubernetes). Prometheus' starts with "_h", so its subject token is a hash: the end
# to end check runs the real binary with it. File's is the stem of the file the binary sweeps.
SCOPES = {"aws": "o-abc123defg", "gcp": "org-123456789012", "azure": "tenant-main",
          "prometheus": "_hpermtest", "grafana": "grafana-permtest", "file": "permtest"}
SWEEP = {p: sweep_subject(p, s) for p, s in SCOPES.items()}

results = {"passed": 0, "failed": 0}


def report(ok: bool, what: str, detail: str = "") -> None:
    results["passed" if ok else "failed"] += 1
    print(f"  {'PASS' if ok else 'FAIL'} {what}{(': ' + detail) if detail and not ok else ''}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_bin() -> str:
    for c in (shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("nats_permissions: nats-server not found (apt-get install nats-server)")


class Identity:
    """One connection as one user, recording the server's permission errors."""

    def __init__(self, url: str, user: str, password: str):
        self.url, self.user, self.password = url, user, password
        self.errors: list[str] = []

    async def __aenter__(self):
        async def on_error(e):
            self.errors.append(str(e))

        self.nc = await nats.connect(servers=[self.url], user=self.user, password=self.password,
                                     error_cb=on_error, allow_reconnect=False, connect_timeout=3,
                                     name=f"perm-test-{self.user}")
        self.js = self.nc.jetstream(timeout=2)
        return self

    async def __aexit__(self, *exc):
        await self.nc.close()

    def refused(self, subject: str) -> bool:
        # nats-py lower-cases the server's message.
        needle = f'permissions violation for publish to "{subject}"'.lower()
        return any(needle in e.lower() for e in self.errors)

    async def publish_ok(self, subject: str) -> None:
        try:
            ack = await self.js.publish(subject, b'{"test": true}', timeout=2,
                                        headers={"Nats-Msg-Id": secrets.token_hex(8)})
            report(ack.stream == "INVENTORY", f"{self.user} may publish to {subject}", f"ack {ack}")
        except Exception as e:  # noqa: BLE001 - any error is the failure being reported
            report(False, f"{self.user} may publish to {subject}", repr(e))

    async def publish_refused(self, subject: str, payload: bytes = b'{"test": true}') -> None:
        try:
            await self.nc.request(subject, payload, timeout=1)
            got = "answered"
        except Exception as e:  # noqa: BLE001 - a timeout or no-responders is expected here
            got = type(e).__name__
        await self.nc.flush(timeout=2)
        await asyncio.sleep(0.1)
        report(self.refused(subject), f"{self.user} is refused publishing to {subject}",
               f"no permissions violation from the server (request {got}; errors {self.errors})")

    async def publish_all_refused(self, subjects: list[str], what: str) -> None:
        """Plain publishes of every subject, then a flush: the server answers a refused publish
        with -ERR before the flush's PONG. One report per subject that was not refused; what
        slipped through is also counted by the final stream check."""
        for subject in subjects:
            await self.nc.publish(subject, b'{"test": true}', headers={"Nats-Msg-Id": secrets.token_hex(8)})
        await self.nc.flush(timeout=2)
        await asyncio.sleep(0.2)
        missed = [s for s in subjects if not self.refused(s)]
        report(not missed, f"{self.user} is refused publishing to {what} ({len(subjects)} subjects)",
               f"no permissions violation for {missed}")


async def stream_messages(url: str, password: str) -> int:
    async with Identity(url, "api", password) as api:
        info = await api.js.stream_info("INVENTORY")
        return info.state.messages


async def nats_py_checks(url: str, pw: dict) -> None:
    # The API (reader) may create the stream with the contract's configuration and read it.
    async with Identity(url, "api", pw["api"]) as api:
        await api.js.add_stream(StreamConfig(
            name="INVENTORY", subjects=["inventory.>"], storage=StorageType.FILE,
            deny_delete=True, deny_purge=True, allow_rollup_hdrs=False, allow_direct=True,
            duplicate_window=120.0))
        info = await api.js.stream_info("INVENTORY")
        report(info.config.subjects == ["inventory.>"], "api may create and read the INVENTORY stream")

    async with Identity(url, "collector-aws", pw["collector-aws"]) as aws:
        await aws.publish_ok("inventory.asset.aws.account.123456789012")
        await aws.publish_ok(SWEEP["aws"])  # its own scope's sweep subject
        await aws.publish_refused("inventory.sweep.aws.other-org")  # another scope of its provider
        await aws.publish_refused("inventory.sweep.aws")  # the legacy subject
        await aws.publish_refused("inventory.asset.gcp.project.my-project")
        await aws.publish_refused(SWEEP["gcp"])
        await aws.publish_refused("inventory.sweep.gcp")
        await aws.publish_refused("inventory.asset.azure.subscription.5f1c1f4e-0b5a-4a4e-9a53-000000000001")
        await aws.publish_refused("$JS.API.STREAM.DELETE.INVENTORY", b"")
        await aws.publish_refused("$JS.API.STREAM.PURGE.INVENTORY", b"{}")
        # Its reads: the stream info and an ordered consumer's create request are allowed.
        try:
            msg = await aws.nc.request("$JS.API.STREAM.INFO.INVENTORY", b"", timeout=2)
            report(b'"INVENTORY"' in msg.data, "collector-aws may read the stream info")
        except Exception as e:  # noqa: BLE001
            report(False, "collector-aws may read the stream info", repr(e))

    async with Identity(url, "collector-gcp", pw["collector-gcp"]) as gcp:
        await gcp.publish_ok("inventory.asset.gcp.project.my-project")
        await gcp.publish_refused("inventory.asset.aws.account.123456789012")

    # Issue 9, acceptance 1: the Prometheus collector's identity can write neither AWS assets nor
    # any AWS sweep (its own scope's token under aws included), nor a legacy sweep subject.
    async with Identity(url, "collector-prometheus", pw["collector-prometheus"]) as prom:
        await prom.publish_refused("inventory.asset.aws.account.052718349960")
        await prom.publish_refused(SWEEP["aws"])
        await prom.publish_refused("inventory.sweep.prometheus")
        await prom.publish_all_refused(
            ["inventory.asset.aws.account.123456789012", "inventory.asset.aws.account." + subject_token("a/b"),
             "inventory.asset.aws.organization.o-abc123defg", "inventory.asset.aws.x",
             "inventory.sweep.aws.other-org", f"inventory.sweep.aws.{subject_token(SCOPES['prometheus'])}",
             "inventory.sweep.aws." + subject_token("o-abc123defg/x"), "inventory.sweep.aws",
             "inventory.sweep.prometheus.prom-default", "inventory.sweep.prometheus." + SCOPES["prometheus"]],
            "AWS asset and sweep subjects, other Prometheus scopes, the legacy sweep subject")

    # Every collector: its own scope's sweep is allowed (the variable reached the server), another
    # scope of its provider, every other provider's sweeps and the legacy subjects are refused.
    for provider in PROVIDERS:
        user = f"collector-{provider}"
        async with Identity(url, user, pw[user]) as c:
            await c.publish_ok(SWEEP[provider])
            others = [f"inventory.sweep.{provider}.other-scope", f"inventory.sweep.{provider}.{SCOPES[provider]}-x"]
            others += [SWEEP[p] for p in PROVIDERS if p != provider]
            others += [f"inventory.sweep.{p}" for p in PROVIDERS]
            await c.publish_all_refused(others, "other scopes' sweeps and every legacy sweep subject")

    # Nobody may publish a legacy sweep subject, nor (API and subscriber) any sweep at all.
    for user in ("api", "api-writer", "subscriber"):
        async with Identity(url, user, pw[user]) as c:
            await c.publish_all_refused([f"inventory.sweep.{p}" for p in PROVIDERS] + list(SWEEP.values()),
                                        "every sweep subject, legacy and scoped")

    async with Identity(url, "api", pw["api"]) as api:
        for subject in ("inventory.asset.prometheus.endpoint.prom-x", "inventory.asset.aws.account.123456789012",
                        "inventory.sweep.aws", SWEEP["aws"], "inventory.anything"):
            await api.publish_refused(subject)
        for subject, body in (("$JS.API.STREAM.DELETE.INVENTORY", b""), ("$JS.API.STREAM.PURGE.INVENTORY", b"{}"),
                              ("$JS.API.STREAM.UPDATE.INVENTORY", b'{"name":"INVENTORY","subjects":["inventory.>"]}'),
                              ("$JS.API.STREAM.MSG.DELETE.INVENTORY", b'{"seq":1}')):
            await api.publish_refused(subject, body)
        try:
            msg = await api.nc.request("$JS.API.STREAM.MSG.GET.INVENTORY",
                                       json.dumps({"last_by_subj": "inventory.asset.aws.account.123456789012"}).encode(),
                                       timeout=2)
            report(b'"message"' in msg.data, "api may read the newest message of a subject")
        except Exception as e:  # noqa: BLE001
            report(False, "api may read the newest message of a subject", repr(e))

    async with Identity(url, "api-writer", pw["api-writer"]) as writer:
        await writer.publish_ok("inventory.asset.prometheus.endpoint.prom-declared")
        await writer.publish_ok("inventory.asset.grafana.endpoint.grafana-declared")
        await writer.publish_refused("inventory.asset.aws.account.123456789012")
        await writer.publish_refused("inventory.sweep.prometheus")

    # The checkpointer writes only the evidence stream: nothing on inventory.>, no stream admin.
    async with Identity(url, "checkpoint", pw["checkpoint"]) as cp:
        await cp.publish_all_refused(["inventory.asset.aws.account.123456789012", SWEEP["aws"],
                                      "inventory.sweep.aws", "inventory.anything"],
                                     "every inventory subject")
        for subject, body in (("$JS.API.STREAM.DELETE.INVENTORY_EVIDENCE", b""),
                              ("$JS.API.STREAM.PURGE.INVENTORY_EVIDENCE", b"{}"),
                              ("$JS.API.STREAM.MSG.DELETE.INVENTORY_EVIDENCE", b'{"seq":1}'),
                              ("$JS.API.STREAM.DELETE.INVENTORY", b"")):
            await cp.publish_refused(subject, body)

    async with Identity(url, "subscriber", pw["subscriber"]) as sub:
        got: asyncio.Queue = asyncio.Queue()

        async def on_msg(m):
            got.put_nowait(m.subject)

        await sub.nc.subscribe("inventory.asset.>", cb=on_msg)
        await sub.nc.flush()
        async with Identity(url, "collector-azure", pw["collector-azure"]) as az:
            await az.publish_ok("inventory.asset.azure.subscription.5f1c1f4e-0b5a-4a4e-9a53-000000000001")
        try:
            subject = await asyncio.wait_for(got.get(), 2)
            report(subject.startswith("inventory.asset.azure."), "subscriber receives the live change feed")
        except asyncio.TimeoutError:
            report(False, "subscriber receives the live change feed", "nothing received")
        await sub.publish_refused("inventory.asset.azure.subscription.x")
        await sub.publish_refused("$JS.API.STREAM.INFO.INVENTORY", b"")

    try:
        async def quiet(_e):
            pass

        await nats.connect(servers=[url], user="collector-aws", password="wrong", allow_reconnect=False,
                           connect_timeout=2, max_reconnect_attempts=0, error_cb=quiet)
        report(False, "a wrong password is refused", "connected")
    except Exception:  # noqa: BLE001 - authorization violation
        report(True, "a wrong password is refused")

    n = await stream_messages(url, pw["api"])
    # 2 aws + 1 gcp + 6 own-scope sweeps + 2 api-writer + 1 azure: nothing refused reached the stream.
    report(n == 12, "the stream holds exactly the 12 permitted writes", f"{n} messages")


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_http(url: str, want: int, seconds: float, proc: subprocess.Popen) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if http("GET", url)[0] == want:
            return True
        time.sleep(0.3)
    return False


def inventory_bin() -> Path | None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for b in (target / "debug" / "inventory", target / "release" / "inventory"):
        if b.is_file() and os.access(b, os.X_OK):
            return b
    return None


def rust_client_checks(nats_url: str, pw: dict, tmp: Path) -> None:
    binary = inventory_bin()
    if binary is None:
        print("  SKIP end-to-end with the Rust client: no inventory binary (cargo build --bin inventory)")
        return
    print(f"end to end with {binary}:")
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("NATS_", "INVENTORY_", "GRAFANA_", "PROM_"))}
    base_env["LD_LIBRARY_PATH"] = f"{ROOT / '.deps' / 'duckdb'}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    base_env.update({"NATS_URL": nats_url, "INVENTORY_LOG": "warn"})
    token = secrets.token_hex(16)
    tokens = "writer:" + hashlib.sha256(token.encode()).hexdigest()
    procs = []
    try:
        apis = {}
        for user in ("api", "api-writer"):
            port = free_port()
            env = dict(base_env, NATS_USER=user, NATS_PASSWORD=pw[user], INVENTORY_LISTEN=f"127.0.0.1:{port}",
                       INVENTORY_DB=str(tmp / f"{user}.duckdb"), INVENTORY_API_TOKENS=tokens)
            log = open(tmp / f"{user}.log", "w")
            p = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            apis[user] = (f"http://127.0.0.1:{port}", p)
        for user, (url, p) in apis.items():
            ok = wait_http(f"{url}/readyz", 200, 60, p)
            report(ok, f"inventory serve as {user} becomes ready (its JetStream reads are allowed)",
                   (tmp / f"{user}.log").read_text()[-2000:])
            if not ok:
                return

        env = dict(base_env, NATS_USER="collector-prometheus", NATS_PASSWORD=pw["collector-prometheus"])
        closed = free_port()  # nothing listens there: the endpoint is reported "down", a complete sweep
        # Its bound scope, whose subject token is a hash: the binary must publish exactly SWEEP["prometheus"].
        name = SCOPES["prometheus"]
        r = subprocess.run([str(binary), "collect", "prometheus", "--url", f"http://127.0.0.1:{closed}",
                            "--name", name], env=env, capture_output=True, text=True, timeout=120)
        report(r.returncode == 0, f"inventory collect prometheus --name {name} as collector-prometheus records its "
               f"sweep on {SWEEP['prometheus']}", f"exit {r.returncode}: {r.stderr[-1500:]}")
        api_url = apis["api"][0]
        seen = False
        for _ in range(50):
            status, body = http("GET", f"{api_url}/api/v1/monitoring?kind=prometheus")
            if status == 200 and name in body:
                seen = True
                break
            time.sleep(0.2)
        report(seen, "the API (reader) lists the endpoint the collector published")

        # The same identity configured for another scope cannot record that scope's sweep (its
        # endpoint asset is a Prometheus subject it may write; the sweep is not). The publisher
        # retries for about 30 s before giving up.
        r = subprocess.run([str(binary), "collect", "prometheus", "--url", f"http://127.0.0.1:{closed}",
                            "--name", "prom-unbound"], env=env, capture_output=True, text=True, timeout=180)
        report(r.returncode != 0 and "inventory.sweep.prometheus.prom-unbound" in r.stderr,
               "inventory collect prometheus --name prom-unbound as collector-prometheus cannot record its sweep "
               f"(exit {r.returncode})", f"exit {r.returncode}: {r.stderr[-1500:]}")

        # The file collector: scope = the asset file's stem, a plain token.
        assets = tmp / f"{SCOPES['file']}.yaml"
        assets.write_text("assets:\n  - provider: gcp\n    kind: project\n    id: permtest-declared\n"
                          "    name: permtest-declared\n    status: declared\n")
        env = dict(base_env, NATS_USER="collector-file", NATS_PASSWORD=pw["collector-file"])
        r = subprocess.run([str(binary), "collect", "file", "--file", str(assets)], env=env,
                           capture_output=True, text=True, timeout=120)
        report(r.returncode == 0, f"inventory collect file as collector-file records its sweep on {SWEEP['file']}",
               f"exit {r.returncode}: {r.stderr[-1500:]}")

        want = [f"/collectors/prometheus/{name}", f"/file/{SCOPES['file']}"]
        body = ""
        for _ in range(50):
            status, body = http("GET", f"{api_url}/api/v1/collectors")
            if status == 200 and all(w in body for w in want):
                break
            time.sleep(0.2)
        report(all(w in body for w in want) and "prom-unbound" not in body,
               "the API's collectors list the two recorded sweeps and no sweep of the unbound scope", body[:1500])

        decl = {"kind": "grafana", "name": "grafana-permtest", "url": "https://grafana.example.com"}
        status, body = http("POST", f"{api_url}/api/v1/monitoring", decl, token)
        report(not 200 <= status < 300, f"POST /api/v1/monitoring through the api reader identity is refused (HTTP {status})",
               f"HTTP {status} {body[:300]}")
        status, body = http("POST", f"{apis['api-writer'][0]}/api/v1/monitoring", decl, token)
        report(200 <= status < 300, f"POST /api/v1/monitoring through the api-writer identity is recorded (HTTP {status})",
               f"HTTP {status} {body[:300]}")

        # The checkpointer: signs a checkpoint of the whole stream onto INVENTORY_EVIDENCE with
        # only its own rights, and the same identity verifies it (as an auditor would).
        keys = tmp / "keys"
        r = subprocess.run([str(binary), "keygen", "--out-dir", str(keys)], env=base_env,
                           capture_output=True, text=True, timeout=60)
        verifier = (keys / "checkpoint-verifier.pub").read_text().strip() if r.returncode == 0 else ""
        env = dict(base_env, NATS_USER="checkpoint", NATS_PASSWORD=pw["checkpoint"])
        r = subprocess.run([str(binary), "checkpoint", "--signing-key-file", str(keys / "checkpoint-signer.key")],
                           env=env, capture_output=True, text=True, timeout=120)
        report(r.returncode == 0, "inventory checkpoint as checkpoint signs onto INVENTORY_EVIDENCE",
               f"exit {r.returncode}: {r.stderr[-1500:]}")
        r = subprocess.run([str(binary), "verify", "--checkpoints", "--key", verifier], env=env,
                           capture_output=True, text=True, timeout=120)
        report(r.returncode == 0, "inventory verify --checkpoints as checkpoint proves the stream",
               f"exit {r.returncode}: {r.stdout[-800:]} {r.stderr[-1500:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="nats-perm-"))
    port, mon = free_port(), free_port()
    # nats-server parses a variable's value as a config value: a plain password must start with a
    # letter, and a bcrypt hash must be given in double quotes (else its "$2b$..." is read as a
    # variable reference). The server gets quoted bcrypt hashes, as in Kubernetes, except for
    # subscriber, which gets the plain password, as in docker-compose.yml: both forms are tested.
    pw = {u: "p" + secrets.token_hex(12) for u in USERS}
    env = dict(os.environ, NATS_SERVER_NAME="perm-test")
    for u in USERS:
        value = pw[u] if u == "subscriber" else '"%s"' % bcrypt.hashpw(pw[u].encode(), bcrypt.gensalt(rounds=10)).decode()
        env["NATS_PASSWORD_" + u.upper().replace("-", "_")] = value
    # Each collector's sweep subject, unquoted as compose and the ConfigMap give it (file's in
    # double quotes: both forms parse to the same string).
    for provider, subject in SWEEP.items():
        env["NATS_SWEEP_SUBJECT_COLLECTOR_" + provider.upper()] = f'"{subject}"' if provider == "file" else subject
    log = open(tmp / "nats.log", "w")
    server = subprocess.Popen([nats_server_bin(), "-c", str(CONF), "-a", "127.0.0.1", "-p", str(port),
                               "-m", str(mon), "-sd", str(tmp / "js")], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if server.poll() is not None:
                sys.exit(f"nats_permissions: nats-server exited: {(tmp / 'nats.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        print(f"nats-server {CONF.relative_to(ROOT)} on {url}:")
        asyncio.run(nats_py_checks(url, pw))
        rust_client_checks(url, pw, tmp)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"nats permissions: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] or not results["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
