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
  - nobody may delete or purge the stream; a wrong password is refused;
  - (issue 11, acceptance 4) reading and streams: collector-aws may create its ordered
    last-per-subject consumers on its own subjects (the filtered API subject the bus uses) and read
    them, and is refused a consumer filtered on inventory.asset.gcp.>, on >, on inventory.>, on
    sweeps, an unfiltered one (bare, named, durable), listing consumers, single-message reads and
    creating any stream (INVENTORY or another); the server itself refuses a body whose filter
    differs from the API subject's; every collector reads only its own asset subjects and creates
    no stream; api, api-writer and checkpoint read the whole stream, and only the API may create
    INVENTORY; the server's own account (/jsz) then shows one stream and only allowed consumers.
Then, when the inventory binary is built, end to end with the real Rust client: `inventory serve`
as api becomes ready (its JetStream reads are all allowed), `inventory collect prometheus` as
collector-prometheus completes a sweep of its bound scope that the API then lists (that scope's
token is a hash, so the binary's subject token and the one docs/runbook.md computes must agree),
the same collector with another endpoint name cannot record its sweep, `inventory collect file`
as collector-file records its sweep (scope = the file's stem), and POST /api/v1/monitoring
through the api reader identity is refused while api-writer's is recorded; the API restarted on its
read model becomes ready (its stream identity check reads a message by sequence). Last, on a new
nats-server, `inventory collect file` started before the stream exists waits (it may not create
it) and records its sweep once `inventory serve` as api has created it.

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


    async def request_json(self, subject: str, body: bytes, raw: bool = False) -> str:
        """A JetStream API request's answer ("OK ..." for a raw direct get), or what went wrong."""
        try:
            msg = await self.nc.request(subject, body, timeout=2)
        except Exception as e:  # noqa: BLE001
            return f"{type(e).__name__}; server errors {self.errors[-2:]}"
        if raw:
            status = (msg.headers or {}).get("Status")
            return f"OK {msg.headers}" if not status and msg.data else f"status {status} {msg.headers}"
        return msg.data.decode()

    async def requests_refused(self, requests: list[tuple[str, bytes]], what: str) -> None:
        """Like publish_all_refused, for JetStream API requests (subject, body)."""
        inbox = self.nc.new_inbox()
        for subject, body in requests:
            await self.nc.publish(subject, body, reply=inbox)
        await self.nc.flush(timeout=2)
        await asyncio.sleep(0.2)
        missed = [s for s, _ in requests if not self.refused(s)]
        report(not missed, f"{self.user} {what} ({len(requests)} requests refused)",
               f"no permissions violation for {missed}")

    async def read_last_per_subject(self, filter_subject: str) -> list[str] | str:
        """What the bus does for a collector's read (bus/src/lib.rs, last_per_subject): an ordered
        consumer with a random name, created through the filtered API subject, then pulled. Returns
        the subjects delivered, or the refusal (a string)."""
        name = consumer_name()
        subject = f"$JS.API.CONSUMER.CREATE.INVENTORY.{name}.{filter_subject}"
        try:
            msg = await self.nc.request(subject, consumer_request(name, filter_subject), timeout=2)
        except Exception as e:  # noqa: BLE001 - a refused request times out
            return f"{type(e).__name__}; server errors {self.errors[-2:]}"
        resp = json.loads(msg.data)
        if "error" in resp:
            return resp["error"]["description"]
        pending = resp.get("num_pending", 0)
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.INVENTORY.{name}",
                              json.dumps({"batch": 256, "expires": 2_000_000_000}).encode(), reply=inbox)
        subjects: list[str] = []
        try:
            while len(subjects) < pending:
                m = await sub.next_msg(timeout=5)
                if m.subject == inbox:  # a status message (no messages, request expired)
                    break
                subjects.append(m.subject)
        except Exception as e:  # noqa: BLE001
            return f"pull failed after {len(subjects)} of {pending}: {e!r}"
        finally:
            await sub.unsubscribe()
        return subjects

    async def reads(self, filter_subject: str, want: list[str] | None = None) -> None:
        got = await self.read_last_per_subject(filter_subject)
        if isinstance(got, str):
            report(False, f"{self.user} may read the newest event per subject of {filter_subject}", got)
            return
        inside = all(subject_matches(filter_subject, s) for s in got)
        ok = inside and bool(got) and (want is None or sorted(got) == sorted(want))
        report(ok, f"{self.user} may read the newest event per subject of {filter_subject} ({len(got)} subjects)",
               f"got {got}, want {want}")


def consumer_name() -> str:
    return "ordered-" + secrets.token_hex(16)


def consumer_request(name: str | None, filter_subject: str | None, durable: bool = False) -> bytes:
    """The body async-nats sends for the bus's ordered consumers (deliver last per subject)."""
    config = {"deliver_policy": "last_per_subject", "ack_policy": "none", "max_deliver": 1,
              "replay_policy": "instant", "mem_storage": True, "num_replicas": 1,
              "inactive_threshold": 30_000_000_000}
    if name:
        config["durable_name" if durable else "name"] = name
    if filter_subject is not None:
        config["filter_subject"] = filter_subject
    return json.dumps({"stream_name": "INVENTORY", "config": config}).encode()


def stream_request(name: str, subjects: list[str]) -> bytes:
    return json.dumps({"name": name, "subjects": subjects, "storage": "file", "retention": "limits",
                       "deny_delete": True, "deny_purge": True, "num_replicas": 1}).encode()


def subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, t in enumerate(p):
        if t == ">":
            return len(s) > i
        if i >= len(s) or (t != "*" and t != s[i]):
            return False
    return len(p) == len(s)


def consumer_create_requests(filters: list[str]) -> list[tuple[str, bytes]]:
    """Creates through the filtered API subject, each filter in the subject and the body."""
    out = []
    for f in filters:
        name = consumer_name()
        out.append((f"$JS.API.CONSUMER.CREATE.INVENTORY.{name}.{f}", consumer_request(name, f)))
    return out


def jsz(mon: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{mon}/jsz?streams=true&consumers=true&config=true",
                                timeout=5) as r:
        return json.loads(r.read())


def streams_and_consumers(mon: int) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The server's own account of its streams and consumers (name, consumer, filter)."""
    streams, consumers = set(), []
    for acc in jsz(mon).get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            streams.add(st["name"])
            for c in st.get("consumer_detail") or []:
                consumers.append((st["name"], c["name"], (c.get("config") or {}).get("filter_subject", "")))
    return streams, consumers


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


# Each collector's own asset subjects: the only filters it may create consumers with.
OWN_ASSETS = {"aws": "inventory.asset.aws.>", "gcp": "inventory.asset.gcp.>", "azure": "inventory.asset.azure.>",
              "prometheus": "inventory.asset.prometheus.endpoint.*",
              "grafana": "inventory.asset.grafana.endpoint.*", "file": "inventory.asset.>"}
# What the collectors read (producers' subject_filter, and one asset's subject after a conflict).
READS = {"aws": ["inventory.asset.aws.account.*", "inventory.asset.aws.account.123456789012"],
         "gcp": ["inventory.asset.gcp.project.*"], "azure": ["inventory.asset.azure.subscription.*"],
         "prometheus": ["inventory.asset.prometheus.endpoint.*", "inventory.asset.prometheus.endpoint.prom-declared"],
         "grafana": ["inventory.asset.grafana.endpoint.*"], "file": ["inventory.asset.>"]}


async def consumer_and_stream_checks(url: str, pw: dict, mon: int) -> None:
    """Issue 11, acceptance 4: a collector identity may create only the ordered consumers it needs
    (newest event per subject of its own asset subjects) and no stream; the API and the
    checkpointer read the whole stream and the API alone creates INVENTORY."""
    contract = stream_request("INVENTORY", ["inventory.>"])
    async with Identity(url, "collector-aws", pw["collector-aws"]) as aws:
        await aws.reads("inventory.asset.aws.account.*", ["inventory.asset.aws.account.123456789012"])
        await aws.reads("inventory.asset.aws.account.123456789012", ["inventory.asset.aws.account.123456789012"])
        await aws.requests_refused(consumer_create_requests(
            ["inventory.asset.gcp.>", "inventory.asset.gcp.project.*", "inventory.asset.gcp.project.my-project",
             "inventory.asset.azure.>", ">", "inventory.>", "inventory.asset.>", "inventory.asset.*.account.*",
             "inventory.asset.*.>", "inventory.*.aws.>", "inventory.sweep.>", SWEEP["aws"]]),
            "may not create a consumer on another provider's subjects, on > or on sweeps")
        name = consumer_name()
        await aws.requests_refused(
            [("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, "inventory.asset.gcp.>")),
             ("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, None)),
             ("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, "inventory.asset.aws.>")),
             (f"$JS.API.CONSUMER.CREATE.INVENTORY.{name}", consumer_request(name, "inventory.asset.gcp.>")),
             (f"$JS.API.CONSUMER.CREATE.INVENTORY.{name}", consumer_request(name, None)),
             (f"$JS.API.CONSUMER.DURABLE.CREATE.INVENTORY.{name}",
              consumer_request(name, "inventory.asset.gcp.>", durable=True)),
             ("$JS.API.CONSUMER.NAMES.INVENTORY", b"{}"), ("$JS.API.CONSUMER.LIST.INVENTORY", b"{}")],
            "may not create an unfiltered consumer (bare, named without filter, durable) nor list consumers")
        # The filtered API subject is its own, the body asks for GCP: the server refuses it.
        got = await aws.request_json(f"$JS.API.CONSUMER.CREATE.INVENTORY.{name}.inventory.asset.aws.account.*",
                                     consumer_request(name, "inventory.asset.gcp.>"))
        report("did not match filtered subject" in got,
               "collector-aws: a consumer whose body filter differs from its API subject's is refused by the server",
               got[:300])
        await aws.requests_refused(
            [("$JS.API.STREAM.CREATE.INVENTORY", contract),
             ("$JS.API.STREAM.CREATE.AWS_COPY", stream_request("AWS_COPY", ["inventory.asset.aws.>"])),
             ("$JS.API.STREAM.CREATE.INVENTORY_EVIDENCE", stream_request("INVENTORY_EVIDENCE", ["inventory-evidence.>"])),
             ("$JS.API.STREAM.MSG.GET.INVENTORY", b'{"seq": 1}'), ("$JS.API.DIRECT.GET.INVENTORY", b'{"seq": 1}'),
             ("$JS.API.DIRECT.GET.INVENTORY.inventory.asset.gcp.project.my-project", b"")],
            "may not create any stream, nor read single messages (any provider's by sequence)")

    # Every collector: its own reads work; another provider's subjects and any stream are refused.
    for provider in PROVIDERS:
        user = f"collector-{provider}"
        async with Identity(url, user, pw[user]) as c:
            for f in READS[provider] if provider != "aws" else []:  # (aws's: above, with what they return)
                await c.reads(f)
            # (collector-file declares assets of every provider: all asset subjects are its own.)
            others = [] if provider == "file" else [f for p, f in OWN_ASSETS.items() if p != provider]
            await c.requests_refused(
                consumer_create_requests(others + ["inventory.>", "inventory.sweep.>"])
                + [("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, OWN_ASSETS[provider])),
                   ("$JS.API.STREAM.CREATE.INVENTORY", contract),
                   (f"$JS.API.STREAM.CREATE.X_{provider.upper()}", stream_request(f"X_{provider.upper()}", ["x.>"]))],
                "may not create consumers outside its own asset subjects, nor any stream")

    for user in ("api", "api-writer"):
        async with Identity(url, user, pw[user]) as api:
            await api.reads("inventory.>")  # the projector follows the whole stream
            got = await api.request_json("$JS.API.DIRECT.GET.INVENTORY", b'{"seq": 1}', raw=True)
            report(got.startswith("OK"), f"{user} may read a message by sequence (the projector's stream identity check)", got)
            await api.requests_refused(
                [("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, "inventory.>")),
                 ("$JS.API.STREAM.CREATE.OTHER", stream_request("OTHER", ["other.>"])),
                 ("$JS.API.STREAM.CREATE.INVENTORY_EVIDENCE", stream_request("INVENTORY_EVIDENCE", ["inventory-evidence.>"]))],
                "may not create an unfiltered consumer nor any stream but INVENTORY")

    async with Identity(url, "checkpoint", pw["checkpoint"]) as cp:
        await cp.reads("inventory.>")
        await cp.requests_refused(
            [("$JS.API.STREAM.CREATE.INVENTORY", contract),
             ("$JS.API.STREAM.CREATE.OTHER", stream_request("OTHER", ["other.>"])),
             ("$JS.API.CONSUMER.CREATE.INVENTORY", consumer_request(None, "inventory.>"))],
            "may not create INVENTORY or another stream (only INVENTORY_EVIDENCE), nor an unfiltered consumer")

    # The server's own account: one stream, and only consumers inside what their creator may read.
    streams, consumers = streams_and_consumers(mon)
    report(streams == {"INVENTORY"}, "the server holds only the INVENTORY stream", f"streams {sorted(streams)}")
    allowed = {f for fs in READS.values() for f in fs} | {"inventory.>"}
    stray = [c for c in consumers if c[2] not in allowed]
    report(bool(consumers) and not stray, f"the server holds only the allowed consumers ({len(consumers)})",
           f"stray {stray}, all {consumers}")


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


def binary_env(nats_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "INVENTORY_", "GRAFANA_", "PROM_"))}
    env["LD_LIBRARY_PATH"] = f"{ROOT / '.deps' / 'duckdb'}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    env.update({"NATS_URL": nats_url, "INVENTORY_LOG": "warn"})
    return env


def serve(binary: Path, base_env: dict, user: str, password: str, port: int, tmp: Path,
          tokens: str = "") -> subprocess.Popen:
    """`inventory serve` as `user` on 127.0.0.1:port, its read model and log in tmp (appended)."""
    env = dict(base_env, NATS_USER=user, NATS_PASSWORD=password, INVENTORY_LISTEN=f"127.0.0.1:{port}",
               INVENTORY_DB=str(tmp / f"{user}.duckdb"), INVENTORY_API_TOKENS=tokens)
    log = open(tmp / f"{user}.log", "a")
    return subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)


def bootstrap_checks(server_env: dict, pw: dict, tmp: Path) -> None:
    """The deployments' start order on a new NATS: a collector that starts before the stream
    exists may not create it; it waits, and records its sweep once the API (which may) has."""
    binary = inventory_bin()
    if binary is None:
        return
    print("a new NATS, the collector started before the API:")
    server, port, mon = start_nats(server_env, tmp / "bootstrap")
    url = f"nats://127.0.0.1:{port}"
    base_env = binary_env(url)
    procs = []
    try:
        assets = tmp / f"{SCOPES['file']}.yaml"
        env = dict(base_env, NATS_USER="collector-file", NATS_PASSWORD=pw["collector-file"], INVENTORY_LOG="info")
        collector = subprocess.Popen([str(binary), "collect", "file", "--file", str(assets)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(collector)
        time.sleep(4)
        streams, _ = streams_and_consumers(mon)
        report(collector.poll() is None and not streams,
               "collector-file waits for the stream, which it may not create",
               f"exit {collector.poll()}, streams {sorted(streams)}")
        api = serve(binary, base_env, "api", pw["api"], free_port(), tmp / "bootstrap")
        procs.append(api)
        try:
            _, err = collector.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            collector.kill()
            _, err = collector.communicate()
        streams, _ = streams_and_consumers(mon)
        report(collector.returncode == 0 and streams == {"INVENTORY"},
               "once the API created INVENTORY the waiting collector records its sweep (exit 0)",
               f"exit {collector.returncode}, streams {sorted(streams)}: {err[-1500:]}")
        report("waiting for it" in err and "STREAM.CREATE.INVENTORY" in err,
               "the collector said why it waited (the refused create, the wait)", err[-1500:])
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
        stop_nats(server)


def start_nats(env: dict, tmp: Path) -> tuple[subprocess.Popen, int, int]:
    """nats-server with the shipped configuration on free loopback ports, its store in tmp."""
    tmp.mkdir(parents=True, exist_ok=True)
    port, mon = free_port(), free_port()
    log = open(tmp / "nats.log", "w")
    server = subprocess.Popen([nats_server_bin(), "-c", str(CONF), "-a", "127.0.0.1", "-p", str(port),
                               "-m", str(mon), "-sd", str(tmp / "js")], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        if server.poll() is not None:
            sys.exit(f"nats_permissions: nats-server exited: {(tmp / 'nats.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    return server, port, mon


def stop_nats(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def rust_client_checks(nats_url: str, pw: dict, tmp: Path) -> None:
    binary = inventory_bin()
    if binary is None:
        print("  SKIP end-to-end with the Rust client: no inventory binary (cargo build --bin inventory)")
        return
    print(f"end to end with {binary}:")
    base_env = binary_env(nats_url)
    token = secrets.token_hex(16)
    tokens = "writer:" + hashlib.sha256(token.encode()).hexdigest()
    procs = []
    try:
        apis = {}
        for user in ("api", "api-writer"):
            port = free_port()
            p = serve(binary, base_env, user, pw[user], port, tmp, tokens)
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

        # The API restarted on its read model: before it is ready the projector checks the stream's
        # identity, reading the first message by sequence (a direct get its identity must allow).
        url, p = apis["api"]
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        p = serve(binary, base_env, "api", pw["api"], int(url.rsplit(":", 1)[1]), tmp, tokens)
        procs.append(p)
        apis["api"] = (url, p)
        ok = wait_http(f"{url}/readyz", 200, 60, p)
        report(ok, "inventory serve as api restarted on its read model becomes ready (stream identity check)",
               (tmp / "api.log").read_text()[-2000:])

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
    server, port, mon = start_nats(env, tmp)
    url = f"nats://127.0.0.1:{port}"
    try:
        print(f"nats-server {CONF.relative_to(ROOT)} on {url}:")
        asyncio.run(nats_py_checks(url, pw))
        asyncio.run(consumer_and_stream_checks(url, pw, mon))
        rust_client_checks(url, pw, tmp)
    finally:
        stop_nats(server)
    try:
        bootstrap_checks(env, pw, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"nats permissions: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] or not results["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
