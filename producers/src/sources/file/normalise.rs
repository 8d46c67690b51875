//! A declared-assets document → the asset documents it declares.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use inventory_schemas::{Asset, AssetKey, AssetStatus};
use serde::{Deserialize, Deserializer};

use crate::source::{provenance, SourceError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    assets: Vec<Declared>,
}

/// One declared asset, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    provider: String,
    kind: String,
    #[serde(deserialize_with = "quoted_id")]
    id: String,
    name: String,
    #[serde(default)]
    status: Option<AssetStatus>,
    #[serde(default)]
    org_path: Vec<String>,
    #[serde(default)]
    region_residency: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default, deserialize_with = "scalar_labels")]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    raw: Option<serde_json::Value>,
}

fn quoted_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Err(serde::de::Error::custom(format!(
            "id {n} must be a quoted string (unquoted numbers lose leading zeros): id: \"{n}\""
        ))),
        other => Err(serde::de::Error::custom(format!(
            "id must be a string, not {}",
            yaml_type(&other)
        ))),
    }
}

fn scalar_labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: BTreeMap<String, serde_yaml::Value> = BTreeMap::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "label {k:?} must be a string, number or boolean, not {}",
                        yaml_type(&other)
                    )))
                }
            };
            Ok((k, v))
        })
        .collect()
}

fn yaml_type(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// Parses and validates a declared-assets document. Errors name the file and the entry.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Asset>, SourceError> {
    let file = path.display();
    let doc: Document =
        serde_yaml::from_str(text).map_err(|e| SourceError::Config(format!("{file}: {e}")))?;
    let mut seen: HashMap<AssetKey, usize> = HashMap::with_capacity(doc.assets.len());
    let mut assets = Vec::with_capacity(doc.assets.len());
    for (i, d) in doc.assets.into_iter().enumerate() {
        let entry = format!("{file}: assets[{i}] ({}/{}/{})", d.provider, d.kind, d.id);
        let key = AssetKey::new(&d.provider, &d.kind, &d.id)
            .map_err(|e| SourceError::Config(format!("{entry}: {e}")))?;
        if d.name.trim().is_empty() {
            return Err(SourceError::Config(format!(
                "{entry}: name must not be empty"
            )));
        }
        if let Some(first) = seen.insert(key.clone(), i) {
            return Err(SourceError::Config(format!(
                "{file}: assets[{i}] duplicates assets[{first}]: both declare {key}"
            )));
        }
        assets.push(Asset {
            id: d.id,
            provider: d.provider,
            kind: d.kind,
            name: d.name,
            status: d.status.unwrap_or(AssetStatus::Declared),
            org_path: d.org_path,
            region_residency: d.region_residency,
            url: d.url,
            auth_mode: d.auth_mode,
            labels: d.labels,
            raw: d.raw.unwrap_or_else(|| serde_json::json!({})),
            provenance: provenance("file", format!("file:{file}")),
        });
    }
    Ok(assets)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(text: &str) -> String {
        let e = parse(Path::new("/etc/inv/assets.yaml"), text).unwrap_err();
        assert_eq!(e.kind(), crate::source::SourceErrorKind::Config);
        e.to_string()
    }

    #[test]
    fn a_full_entry_and_defaults() {
        let text = r#"
assets:
  - provider: aws
    kind: account
    id: "012345678901"
    name: prod-payments
    status: active
    org_path: [r-root, ou-prod]
    region_residency: [eu-west-1]
    url: https://console.aws.amazon.com
    labels: {team: payments, cost_center: 4711, pci: true}
    raw: {Email: a@example.com, JoinedTimestamp: "2020-01-01"}
  - provider: gcp
    kind: project
    id: my-proj
    name: My project
"#;
        let assets = parse(Path::new("x.yaml"), text).unwrap();
        assert_eq!(assets.len(), 2);
        let a = &assets[0];
        assert_eq!(a.id, "012345678901");
        assert_eq!(a.status, AssetStatus::Active);
        assert_eq!(a.labels["cost_center"], "4711");
        assert_eq!(a.labels["pci"], "true");
        assert_eq!(a.raw["Email"], "a@example.com");
        assert_eq!(a.provenance.api, "file:x.yaml");
        let b = &assets[1];
        assert_eq!(b.status, AssetStatus::Declared);
        assert!(b.org_path.is_empty() && b.labels.is_empty());
        assert_eq!(b.raw, serde_json::json!({}));
    }

    #[test]
    fn malformed_yaml_names_the_file_and_position() {
        let e = err("assets:\n  - provider: aws\n   kind: [\n");
        assert!(e.starts_with("/etc/inv/assets.yaml: "), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn unknown_fields_name_the_entry() {
        let e = err("assets:\n  - {provider: aws, kind: account, id: \"1\", name: a}\n  - {provider: aws, kind: account, id: \"2\", nmae: b}\n");
        assert!(e.contains("assets[1]"), "{e}");
        assert!(e.contains("unknown field `nmae`"), "{e}");
    }

    #[test]
    fn unquoted_numeric_ids_are_refused_with_a_hint() {
        let e = err("assets:\n  - {provider: aws, kind: account, id: 111111111111, name: a}\n");
        assert!(e.contains("assets[0]"), "{e}");
        assert!(e.contains("must be a quoted string"), "{e}");
    }

    #[test]
    fn bad_provider_words_name_the_entry() {
        let e = err("assets:\n  - {provider: AWS, kind: account, id: \"1\", name: a}\n");
        assert!(
            e.starts_with(
                "/etc/inv/assets.yaml: assets[0] (AWS/account/1): invalid asset key \"AWS\""
            ),
            "{e}"
        );
        let e = err(
            "assets:\n  - {provider: aws, kind: account, id: \"1\", name: a, status: sideways}\n",
        );
        assert!(e.contains("unknown variant `sideways`"), "{e}");
    }

    #[test]
    fn duplicate_keys_name_both_entries() {
        let e = err("assets:\n  - {provider: aws, kind: account, id: \"1\", name: a}\n  - {provider: gcp, kind: project, id: p, name: p}\n  - {provider: aws, kind: account, id: \"1\", name: again}\n");
        assert_eq!(
            e,
            "/etc/inv/assets.yaml: assets[2] duplicates assets[0]: both declare aws/account/1"
        );
    }

    #[test]
    fn empty_names_and_nested_labels_are_refused() {
        let e = err("assets:\n  - {provider: aws, kind: account, id: \"1\", name: \" \"}\n");
        assert!(e.ends_with("name must not be empty"), "{e}");
        let e = err(
            "assets:\n  - {provider: aws, kind: account, id: \"1\", name: a, labels: {x: [1]}}\n",
        );
        assert!(e.contains("label \"x\" must be a string"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets.yaml");
        let assets = parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let count = |p: &str| assets.iter().filter(|a| a.provider == p).count();
        assert_eq!((count("aws"), count("gcp"), count("azure")), (4, 3, 3));
        assert!(assets.iter().all(|a| !a.labels.is_empty()));
    }
}
