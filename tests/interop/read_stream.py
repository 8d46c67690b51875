"""Reads the INVENTORY stream with clients that are not ours (nats-py, the CloudEvents Python SDK,
jsonschema) and checks that every message is a valid CloudEvent of asset-inventory's types whose
`data` validates against the committed JSON Schema of its type.

Usage: read_stream.py NATS_URL SCHEMAS_DIR EXPECTED_COUNT
Exits 0 when all EXPECTED_COUNT messages pass; prints one line per failure otherwise.
"""

import asyncio
import json
import pathlib
import sys

import jsonschema
import nats
from cloudevents.http import from_json

TYPES = {
    "io.companyos.inventory.asset.discovered.v1",
    "io.companyos.inventory.asset.changed.v1",
    "io.companyos.inventory.asset.deleted.v1",
    "io.companyos.inventory.sweep.completed.v1",
}
ASSET_EXTENSIONS = ("contenthash", "prevseq", "chainhash")


def check(msg, schemas):
    """Returns a list of problems with one message."""
    problems = []
    ctype = (msg.headers or {}).get("Content-Type")
    if ctype != "application/cloudevents+json":
        problems.append(f"Content-Type header is {ctype!r}")
    event = from_json(msg.data)  # raises on anything that is not a structured CloudEvent
    attrs = event.get_attributes()
    if attrs.get("specversion") != "1.0":
        problems.append(f"specversion {attrs.get('specversion')!r}")
    ctype = attrs.get("type")
    if ctype not in TYPES:
        return problems + [f"unknown type {ctype!r}"]
    for required in ("id", "source", "time"):
        if not attrs.get(required):
            problems.append(f"missing {required}")
    if attrs.get("datacontenttype") != "application/json":
        problems.append(f"datacontenttype {attrs.get('datacontenttype')!r}")
    data = event.get_data()
    if not isinstance(data, dict):
        return problems + ["data is not a JSON object"]
    try:
        jsonschema.validate(data, schemas[ctype])
    except jsonschema.ValidationError as e:
        problems.append(f"data violates {ctype}.json: {e.message}")
    if ctype != "io.companyos.inventory.sweep.completed.v1":
        for ext in ASSET_EXTENSIONS:
            if ext not in attrs:
                problems.append(f"missing extension {ext}")
        key = f"{data.get('provider')}/{data.get('kind')}/{data.get('id')}"
        if attrs.get("subject") != key:
            problems.append(f"subject {attrs.get('subject')!r} is not the data's key {key!r}")
        if not msg.subject.startswith(f"inventory.asset.{data.get('provider')}.{data.get('kind')}."):
            problems.append(f"NATS subject {msg.subject} does not match the key {key}")
        if not isinstance(attrs.get("prevseq"), int):
            problems.append("prevseq is not an integer")
    elif not msg.subject.startswith("inventory.sweep."):
        problems.append(f"sweep on subject {msg.subject}")
    return problems


async def main(url, schema_dir, expected):
    schemas = {
        p.name.removesuffix(".json"): json.loads(p.read_text())
        for p in pathlib.Path(schema_dir).glob("*.json")
    }
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe("inventory.>", ordered_consumer=True)
    seen, failures = 0, 0
    try:
        while seen < expected:
            msg = await sub.next_msg(timeout=10)
            seen += 1
            try:
                problems = check(msg, schemas)
            except Exception as e:  # the SDK's own parse error is a failure, not a crash
                problems = [f"not a CloudEvent: {e!r}"]
            for p in problems:
                failures += 1
                print(f"seq {msg.metadata.sequence.stream} {msg.subject}: {p}")
    finally:
        await nc.close()
    print(f"{seen} messages read, {failures} problems")
    return 0 if failures == 0 and seen == expected else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
