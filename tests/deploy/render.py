#!/usr/bin/env python3
"""Renders a kustomization of asset-inventory (infra/k8s/overlays/*) to one multi-document YAML.

No kustomize binary installs from the registries this project may use, so the kustomizations are
kept to what this renderer implements exactly as kustomize does: `resources` (files and
directories), `components`, `images` (name -> newName / newTag / digest) and `replacements` (a
field copied from one object to others; kustomize applies them after `images`). Any other field
is refused, so a kustomization cannot silently grow features that this check would not render.

    render.py infra/k8s/overlays/production > rendered.yaml
"""
import sys
from pathlib import Path

import yaml

ALLOWED = {"apiVersion", "kind", "resources", "components", "images", "replacements"}


def load_kustomization(d: Path) -> dict:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = d / name
        if p.is_file():
            k = yaml.safe_load(p.read_text()) or {}
            extra = set(k) - ALLOWED
            if extra:
                sys.exit(f"render: {p}: unsupported kustomization fields {sorted(extra)} (only {sorted(ALLOWED)})")
            return k
    sys.exit(f"render: {d}: no kustomization.yaml")


def render(d: Path) -> list:
    k = load_kustomization(d)
    docs = []
    for entry in list(k.get("resources", [])) + list(k.get("components", [])):
        p = (d / entry).resolve()
        if p.is_dir():
            docs.extend(render(p))
        elif p.is_file():
            docs.extend(x for x in yaml.safe_load_all(p.read_text()) if x)
        else:
            sys.exit(f"render: {d}: resource {entry} does not exist")
    for img in k.get("images", []):
        apply_image(docs, img)
    for rep in k.get("replacements", []):
        apply_replacement(docs, rep)
    return docs


def walk(node, path: str, create: bool = False):
    """Resolves a kustomize field path (`a.b.[name=x].c`, numeric list indexes) to (parent, key)."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("[") and part.endswith("]"):
            k, v = part[1:-1].split("=", 1)
            matches = [j for j, item in enumerate(node) if isinstance(item, dict) and str(item.get(k)) == v]
            if len(matches) != 1:
                sys.exit(f"render: field path {path}: {part} matches {len(matches)} items")
            key = matches[0]
        elif isinstance(node, list):
            key = int(part)
        else:
            key = part
            if key not in node:
                sys.exit(f"render: field path {path}: no {part}")
        if last:
            return node, key
        node = node[key]
    sys.exit(f"render: empty field path {path}")


def select(docs: list, sel: dict) -> list:
    return [d for d in docs if all(
        (d.get("kind") if f == "kind" else d["metadata"].get(f)) == v for f, v in sel.items())]


def apply_replacement(docs: list, rep: dict) -> None:
    src = rep["source"]
    found = select(docs, {k: v for k, v in src.items() if k in ("kind", "name", "namespace")})
    if len(found) != 1:
        sys.exit(f"render: replacement source {src} matches {len(found)} objects")
    parent, key = walk(found[0], src["fieldPath"])
    value = parent[key]
    for target in rep["targets"]:
        objs = select(docs, target["select"])
        if not objs:
            sys.exit(f"render: replacement target {target['select']} matches no object")
        for obj in objs:
            for fp in target["fieldPaths"]:
                parent, key = walk(obj, fp)
                parent[key] = value


def pod_specs(doc: dict):
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec and isinstance(spec["template"], dict) and "spec" in spec["template"]:
        yield spec["template"]["spec"]


def apply_image(docs: list, img: dict) -> None:
    name = img["name"]
    for doc in docs:
        for ps in pod_specs(doc):
            for c in ps.get("containers", []) + ps.get("initContainers", []):
                ref = c["image"]
                base = ref.split("@", 1)[0]
                if ":" in base.rsplit("/", 1)[-1]:
                    base = base.rsplit(":", 1)[0]
                if base != name:
                    continue
                new = img.get("newName", base)
                if "digest" in img:
                    c["image"] = f"{new}@{img['digest']}"
                elif "newTag" in img:
                    c["image"] = f"{new}:{img['newTag']}"
                else:
                    c["image"] = ref.replace(base, new, 1)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: render.py KUSTOMIZATION_DIR")
    docs = render(Path(sys.argv[1]))
    seen = set()
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"), doc["metadata"].get("namespace"), doc["metadata"]["name"])
        if key in seen:
            sys.exit(f"render: duplicate object {key}")
        seen.add(key)
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, width=200))


if __name__ == "__main__":
    main()
