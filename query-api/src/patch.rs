//! JSON Patch (RFC 6902) between two versions of an asset document: what changed.
//!
//! Objects are compared member by member (`add`, `remove`, `replace` at the deepest differing
//! member); arrays and scalars that differ are replaced whole, which keeps patches short and
//! readable for the documents here (tags, paths, provider records). `provenance` is left out: it
//! records how an observation was made (request ids, pages), is excluded from the content hash,
//! and is reported beside the patch instead.

use serde_json::{json, Map, Value};

/// The operations that turn `from` into `to` (both asset documents), `provenance` excluded.
pub fn asset_patch(from: &Value, to: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    match (from, to) {
        // Compared in place: no copy of either document without its provenance.
        (Value::Object(a), Value::Object(b)) => {
            diff_objects(a, b, &mut String::new(), &mut ops, Some("provenance"));
        }
        _ => diff(from, to, &mut String::new(), &mut ops),
    }
    ops
}

fn diff(from: &Value, to: &Value, path: &mut String, ops: &mut Vec<Value>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => diff_objects(a, b, path, ops, None),
        _ => ops.push(json!({"op": "replace", "path": path.as_str(), "value": to})),
    }
}

/// Members of `a` and `b` that differ, `skip` (a member name) left out.
fn diff_objects(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &mut String,
    ops: &mut Vec<Value>,
    skip: Option<&str>,
) {
    let len = path.len();
    let kept = |k: &String| skip != Some(k.as_str());
    for (k, va) in a.iter().filter(|(k, _)| kept(k)) {
        push_token(path, k);
        match b.get(k) {
            None => ops.push(json!({"op": "remove", "path": path.as_str()})),
            Some(vb) => diff(va, vb, path, ops),
        }
        path.truncate(len);
    }
    for (k, vb) in b.iter().filter(|(k, _)| kept(k)) {
        if !a.contains_key(k) {
            push_token(path, k);
            ops.push(json!({"op": "add", "path": path.as_str(), "value": vb}));
            path.truncate(len);
        }
    }
}

/// Appends `/token` with JSON Pointer escaping (`~` → `~0`, `/` → `~1`).
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal RFC 6902 applier for the three operations produced, to check round trips.
    fn apply(doc: &Value, ops: &[Value]) -> Value {
        let mut doc = doc.clone();
        for op in ops {
            let path = op["path"].as_str().unwrap();
            if path.is_empty() {
                doc = op["value"].clone();
                continue;
            }
            let tokens: Vec<String> = path[1..]
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect();
            let (last, parents) = tokens.split_last().unwrap();
            let mut target = &mut doc;
            for t in parents {
                target = target.get_mut(t.as_str()).unwrap();
            }
            let obj = target.as_object_mut().unwrap();
            match op["op"].as_str().unwrap() {
                "remove" => {
                    assert!(
                        obj.remove(last.as_str()).is_some(),
                        "remove of a missing member"
                    );
                }
                "add" => {
                    assert!(obj.insert(last.clone(), op["value"].clone()).is_none());
                }
                "replace" => {
                    assert!(obj.insert(last.clone(), op["value"].clone()).is_some());
                }
                other => panic!("unexpected op {other}"),
            }
        }
        doc
    }

    #[test]
    fn patches_turn_one_version_into_the_next() {
        let a = json!({
            "id": "1", "name": "old", "labels": {"env": "prod", "a/b": "x", "t~": "1"},
            "org_path": ["r", "ou-1"], "raw": {"Status": "ACTIVE", "n": 1},
            "provenance": {"request_ids": ["r1"]}
        });
        let b = json!({
            "id": "1", "name": "new", "labels": {"env": "prod", "t~": "2", "owner": "me"},
            "org_path": ["r", "ou-2"], "raw": {"Status": "SUSPENDED", "n": 1},
            "provenance": {"request_ids": ["r2"]}, "url": "https://x"
        });
        let ops = asset_patch(&a, &b);
        let mut stripped_a = a.clone();
        stripped_a.as_object_mut().unwrap().remove("provenance");
        let mut stripped_b = b.clone();
        stripped_b.as_object_mut().unwrap().remove("provenance");
        assert_eq!(apply(&stripped_a, &ops), stripped_b);
        let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&"/labels/a~1b"), "{paths:?}");
        assert!(paths.contains(&"/labels/t~0"), "{paths:?}");
        assert!(paths.contains(&"/org_path"), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/provenance")));
        assert!(asset_patch(&a, &a).is_empty());
        // A document that is not an object is replaced whole.
        assert_eq!(
            asset_patch(&Value::Null, &b)[0]["path"],
            json!(""),
            "whole-document replace"
        );
    }
}
