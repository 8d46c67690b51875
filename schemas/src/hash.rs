//! Canonical JSON, content hashes, the per-asset hash chain and deterministic event ids.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::asset::{Asset, Tombstone};
use crate::event::EventType;
use crate::SchemaError;

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant
/// whitespace, strings escaped as `serde_json` escapes them. Independent of serde_json's
/// `preserve_order` feature.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of the canonical JSON of a serialisable value with its `provenance` member removed
/// (provenance changes on every sweep and is not part of the asset's state).
fn content_hash_of<T: Serialize>(value: &T) -> Result<String, SchemaError> {
    let mut v = serde_json::to_value(value).map_err(SchemaError::Json)?;
    if let Value::Object(map) = &mut v {
        map.remove("provenance");
    }
    Ok(sha256_hex(canonical_json(&v).as_bytes()))
}

/// The `contenthash` of an asset state.
pub fn asset_content_hash(asset: &Asset) -> Result<String, SchemaError> {
    content_hash_of(asset)
}

/// The `contenthash` of a tombstone.
pub fn tombstone_content_hash(tombstone: &Tombstone) -> Result<String, SchemaError> {
    content_hash_of(tombstone)
}

/// The `contenthash` of an arbitrary `data` document (provenance excluded), as `verify` recomputes it.
pub fn data_content_hash(data: &Value) -> String {
    match data {
        Value::Object(map) if map.contains_key("provenance") => {
            let mut copy = map.clone();
            copy.remove("provenance");
            sha256_hex(canonical_json(&Value::Object(copy)).as_bytes())
        }
        other => sha256_hex(canonical_json(other).as_bytes()),
    }
}

/// The next link of an asset's hash chain: `sha256(previous chainhash ‖ contenthash ‖ type)`, with
/// the empty string as the previous chainhash of an asset's first event.
pub fn chain_hash(previous: &str, contenthash: &str, ty: EventType) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(contenthash.as_bytes());
    h.update(ty.as_str().as_bytes());
    hex::encode(h.finalize())
}

/// The deterministic id of an asset event: a hash of (asset key, previous sequence, content hash),
/// so that a retried publish carries the same id and JetStream drops the duplicate.
pub fn asset_event_id(key: &str, prevseq: u64, contenthash: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b"\n");
    h.update(prevseq.to_string().as_bytes());
    h.update(b"\n");
    h.update(contenthash.as_bytes());
    hex::encode(h.finalize())[..32].to_owned()
}

/// The deterministic id of a sweep event: a hash of its source and start time.
pub fn sweep_event_id(source: &str, started_at_nanos: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"sweep\n");
    h.update(source.as_bytes());
    h.update(b"\n");
    h.update(started_at_nanos.to_string().as_bytes());
    hex::encode(h.finalize())[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": "é\n", "x": null}], "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[3,{"x":null,"y":"é\n"}]},"b":1}"#
        );
    }

    #[test]
    fn content_hash_ignores_provenance_and_key_order() {
        let a = json!({"id": "1", "name": "x", "provenance": {"request_ids": ["r1"]}});
        let b = json!({"name": "x", "id": "1", "provenance": {"request_ids": ["r2"]}});
        assert_eq!(data_content_hash(&a), data_content_hash(&b));
        let c = json!({"name": "y", "id": "1"});
        assert_ne!(data_content_hash(&a), data_content_hash(&c));
    }

    #[test]
    fn chain_and_ids_are_deterministic() {
        let c1 = chain_hash("", "abc", EventType::Discovered);
        assert_eq!(c1, chain_hash("", "abc", EventType::Discovered));
        assert_ne!(c1, chain_hash("", "abc", EventType::Changed));
        assert_ne!(c1, chain_hash(&c1, "abc", EventType::Discovered));
        let id = asset_event_id("aws/account/1", 0, "abc");
        assert_eq!(id.len(), 32);
        assert_ne!(id, asset_event_id("aws/account/1", 1, "abc"));
    }
}
