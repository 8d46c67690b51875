//! JSON Schemas of every event's `data`, generated from the Rust types.
//!
//! The committed files under `schemas/json/` must equal what this module generates; the test
//! `committed_json_schemas_match_the_types` fails on drift. Regenerate with
//! `INVENTORY_WRITE_SCHEMAS=1 cargo test -p inventory-schemas committed_json_schemas` (or
//! `make schemas`).

use schemars::{schema_for, Schema};

use crate::asset::{Asset, SweepCompleted, Tombstone};
use crate::event::EventType;

/// `(file name, schema)` for the `data` of each event type.
pub fn data_schemas() -> Vec<(String, Schema)> {
    EventType::ALL
        .into_iter()
        .map(|ty| {
            let mut schema = match ty {
                EventType::Discovered | EventType::Changed => schema_for!(Asset),
                EventType::Deleted => schema_for!(Tombstone),
                EventType::SweepCompleted => schema_for!(SweepCompleted),
            };
            schema.insert(
                "$id".into(),
                format!(
                    "https://companyos.io/schemas/inventory/{}.json",
                    ty.as_str()
                )
                .into(),
            );
            schema.insert(
                "description".into(),
                format!("`data` of CloudEvents of type `{}`", ty.as_str()).into(),
            );
            (format!("{}.json", ty.as_str()), schema)
        })
        .collect()
}

/// Pretty JSON of a schema with keys sorted at every level and a trailing newline, as committed
/// (the same bytes whether or not serde_json's `preserve_order` is enabled in the build).
pub fn render(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(schema.as_value())).unwrap_or_default();
    s.push('\n');
    s
}

fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(sorted).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn committed_json_schemas_match_the_types() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
        let write = std::env::var_os("INVENTORY_WRITE_SCHEMAS").is_some();
        let mut drift = Vec::new();
        for (name, schema) in data_schemas() {
            let path = dir.join(&name);
            let want = render(&schema);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(have) if have == want => {}
                _ => drift.push(name),
            }
        }
        assert!(
            drift.is_empty(),
            "schemas/json is out of date for {drift:?}: run `make schemas` and commit the result"
        );
    }

    #[test]
    fn schemas_accept_real_events() {
        let asset = crate::event::tests::sample_asset("1");
        let v = serde_json::to_value(&asset).unwrap();
        let (_, schema) = &data_schemas()[0];
        let props = schema.get("properties").unwrap().as_object().unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(props.contains_key(key), "schema lacks {key}");
        }
    }
}
