#!/usr/bin/env python3
"""NATS sweep subjects of collector scopes, as schemas/src/key.rs computes them (DESIGN section 4):
inventory.sweep.<provider>.<scope token>, the token being the scope itself when it matches
[A-Za-z0-9_-]{1,128} and does not start with "_h", else "_h" + the first 40 hex digits of the
SHA-256 of the scope.

    python3 tests/deploy/subjects.py PROVIDER SCOPE     prints the subject, e.g. for
                                                        NATS_SWEEP_SUBJECT_COLLECTOR_<PROVIDER>

Used by nats_permissions.py and scope_bindings.py; nats_permissions.py runs the real `inventory`
binary on a hashed scope, so a disagreement with the Rust code fails make deploy-check.
"""
import hashlib
import re
import sys

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def subject_token(scope: str) -> str:
    if _SAFE.fullmatch(scope) and not scope.startswith("_h"):
        return scope
    return "_h" + hashlib.sha256(scope.encode()).hexdigest()[:40]


def sweep_subject(provider: str, scope: str) -> str:
    return f"inventory.sweep.{provider}.{subject_token(scope)}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: subjects.py PROVIDER SCOPE")
    print(sweep_subject(sys.argv[1], sys.argv[2]))
