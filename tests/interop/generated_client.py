"""Drives every route of a real server through a client generated from its /openapi.json.

Run by query-api/tests/openapi_contract.rs after `openapi-python-client generate` has written the
package `inventory_client` into the working directory:

    generated_client.py BASE_URL WRITER_TOKEN VIEWER_TOKEN

Every answer is parsed by the generated models (`raise_on_unexpected_status`: an answer the spec
does not declare fails), and every parsed document must hold every member the server sent: a
member the models do not know (`additional_properties`) fails the run.
"""

import json
import sys
import uuid

import httpx
from inventory_client import AuthenticatedClient, Client
from inventory_client.api.accounts import list_accounts
from inventory_client.api.assets import get_asset, list_assets
from inventory_client.api.collectors import list_collectors
from inventory_client.api.integrity import get_integrity
from inventory_client.api.history import diff, get_asset_history, list_changes, stream_changes
from inventory_client.api.monitoring import declare_monitoring, list_monitoring
from inventory_client.api.operations import healthz, list_rejected, metrics, readyz
from inventory_client import models
from inventory_client.types import UNSET, Unset

BASE, WRITER, VIEWER = sys.argv[1:4]


def known(value, path="$"):
    """Fails if a parsed document (or one inside it) kept members its model does not declare."""
    extra = getattr(value, "additional_properties", None)
    if extra and not isinstance(value, (models.DeclareMonitoringLabels,)) and "Labels" not in type(value).__name__:
        raise AssertionError(f"{path}: members the spec does not declare: {sorted(extra)}")
    if hasattr(value, "__attrs_attrs__"):
        for a in value.__attrs_attrs__:
            if a.name != "additional_properties":
                known(getattr(value, a.name), f"{path}.{a.name}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            known(v, f"{path}[{i}]")


def ok(response, model):
    assert response.status_code // 100 == 2, f"{response.status_code}: {response.content!r}"
    parsed = response.parsed
    assert isinstance(parsed, model), f"{type(parsed)} is not {model}: {response.content!r}"
    known(parsed)
    return parsed


def problem(response, status):
    assert response.status_code == status, f"{response.status_code}: {response.content!r}"
    assert isinstance(response.parsed, models.Problem), response.content
    assert response.parsed.status == status
    return response.parsed


def main():
    writer = AuthenticatedClient(base_url=BASE, token=WRITER, raise_on_unexpected_status=True)
    viewer = AuthenticatedClient(base_url=BASE, token=VIEWER, raise_on_unexpected_status=True)
    anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)

    # Probes and metrics.
    assert healthz.sync_detailed(client=anonymous).status_code == 200
    ok(readyz.sync_detailed(client=anonymous), models.Readiness)
    m = metrics.sync_detailed(client=anonymous)
    assert m.status_code == 200 and b"inventory_" in m.content, m.content[:200]

    # The current view, paged to the end: next_cursor is null on the last page.
    seen = []
    cursor = UNSET
    while True:
        page = ok(
            list_assets.sync_detailed(client=viewer, limit=2, cursor=cursor, include_deleted=True),
            models.AssetPage,
        )
        seen += [a.key for a in page.items]
        assert page.as_of_seq is None, "the current view has no as_of_seq"
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) >= 5, seen
    deleted = [a for a in page.items if a.deleted_at is not None] + [
        a
        for a in ok(list_assets.sync_detailed(client=viewer, include_deleted=True), models.AssetPage).items
        if a.deleted_at is not None
    ]
    assert deleted, "the deleted asset has deleted_at"
    assert any(
        a.url is None for a in ok(list_assets.sync_detailed(client=viewer), models.AssetPage).items
    ), "an asset without url"
    # Reads need a token here (a viewer token is configured).
    problem(list_assets.sync_detailed(client=anonymous), 401)

    # One asset, now and in the past; a key that was never recorded.
    key = "aws/account/111111111111"
    now = ok(get_asset.sync_detailed(key, client=viewer), models.AssetDoc)
    assert now.name == "prod-renamed", now.name
    then = ok(get_asset.sync_detailed(key, client=viewer, as_of="seq:1"), models.AssetDoc)
    assert then.name == "prod", then.name
    problem(get_asset.sync_detailed("aws/account/999", client=viewer), 404)
    past = ok(list_assets.sync_detailed(client=viewer, as_of="seq:2"), models.AssetPage)
    assert past.as_of_seq == 2 and len(past.items) == 2, past
    problem(list_assets.sync_detailed(client=viewer, as_of="seq:9999"), 404)
    problem(list_assets.sync_detailed(client=viewer, limit=0), 400)

    ok(list_accounts.sync_detailed(client=viewer, provider=models.AccountProvider.GCP), models.AssetPage)
    ok(list_monitoring.sync_detailed(client=viewer), models.AssetPage)

    # History: newest first, a patch on the change, none on the first version.
    history = ok(get_asset_history.sync_detailed(key, client=viewer), models.ChangePage)
    assert [c.type_ for c in history.items] == ["changed", "discovered"], history.items
    assert history.items[0].patch and history.items[1].patch is None
    changes = ok(list_changes.sync_detailed(client=viewer, since="seq:0", limit=3), models.ChangePage)
    assert changes.next_cursor is not None
    ok(list_changes.sync_detailed(client=viewer, cursor=changes.next_cursor), models.ChangePage)
    d = ok(diff.sync_detailed(client=viewer, from_="seq:2", to="seq:7"), models.DiffPage)
    assert d.counts.added >= 1 and d.counts.removed >= 1 and d.counts.changed >= 1, d.counts
    assert any(i.from_ is None for i in d.items) and any(i.to is None for i in d.items)

    collectors = ok(list_collectors.sync_detailed(client=viewer), models.CollectorList)
    assert any(c.error is not None for c in collectors.items)
    assert any(c.last_ok_at is None for c in collectors.items)
    integrity = ok(get_integrity.sync_detailed(client=viewer), models.Integrity)
    assert integrity.state == models.IntegrityState.NO_KEY, integrity.state  # no verifier key given
    rejected = ok(list_rejected.sync_detailed(client=viewer), models.RejectedPage)
    assert rejected.items, "the undecodable message is listed"

    # The change feed: read its first events as the spec describes them (SSE), each event's
    # data parsed by the generated model of its type.
    events = []
    with httpx.Client(base_url=BASE, timeout=10) as http:
        with http.stream(
            "GET",
            "/api/v1/changes/stream",
            params={"since": "seq:0"},
            headers={"Authorization": f"Bearer {VIEWER}"},
        ) as r:
            assert r.status_code == 200, r.status_code
            assert r.headers["content-type"].startswith("text/event-stream")
            event = {}
            for line in r.iter_lines():
                if line == "":
                    if "data" in event:
                        events.append(event)
                    event = {}
                    if len(events) >= 3:
                        break
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    event[field] = value[1:] if value.startswith(" ") else value
    for e in events:
        assert e["event"] == "change", e
        doc = models.ChangeDoc.from_dict(json.loads(e["data"]))
        known(doc)
        assert str(doc.seq) == e["id"], e
    # The route is in the generated client too (an SSE answer is not a JSON document).
    assert stream_changes is not None

    # Declarations: a writer declares, a viewer may not.
    name = "contract-" + uuid.uuid4().hex[:8]
    body = models.DeclareMonitoring(
        kind=models.MonitoringKind.PROMETHEUS,
        name=name,
        url="http://prom.example:9090/",
        labels=models.DeclareMonitoringLabels.from_dict({"team": "sre"}),
    )
    created = declare_monitoring.sync_detailed(client=writer, body=body)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.Declared) and created.parsed.outcome == models.DeclareOutcome.DISCOVERED
    again = declare_monitoring.sync_detailed(client=writer, body=body)
    assert again.status_code == 200 and again.parsed.outcome == models.DeclareOutcome.UNCHANGED
    problem(declare_monitoring.sync_detailed(client=viewer, body=body), 403)
    bad = models.DeclareMonitoring(kind=models.MonitoringKind.GRAFANA, name="_hx", url="http://g.example/")
    assert problem(declare_monitoring.sync_detailed(client=writer, body=bad), 400).parameter == "name"

    print("every route read")


if __name__ == "__main__":
    main()
