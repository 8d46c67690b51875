//! The `file` source: assets declared by hand in a YAML file (see `examples/assets.yaml`).
//!
//! ```yaml
//! assets:
//!   - provider: aws              # required, [a-z0-9_-]
//!     kind: account              # required, [a-z0-9_-]
//!     id: "012345678901"         # required, a quoted string (unquoted numbers lose leading zeros)
//!     name: prod-payments        # required
//!     status: active             # optional, default `declared`
//!     org_path: [root, prod]     # optional
//!     region_residency: [eu-west-1]  # optional
//!     url: https://...           # optional
//!     auth_mode: none            # optional
//!     labels: {team: payments}   # optional; numbers and booleans become strings
//!     raw: {any: thing}          # optional, free-form
//! ```
//! Unknown fields, duplicate keys and invalid provider/kind words are errors naming the file
//! and the entry. Scope: the file stem; source `/file/<stem>`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use inventory_schemas::{asset_filter, Asset, AssetKey, AssetStatus};
use serde::{Deserialize, Deserializer};

use crate::config::{validate_name, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

/// Settings of the `file` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path of the YAML file of declared assets.
    pub path: PathBuf,
    /// Scope name (`/file/<name>`); default: the file stem.
    #[serde(default)]
    pub name: Option<String>,
}

/// The `file` source.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    scope: String,
}

impl FileSource {
    /// Validates the config: the scope (file stem or `name`) must be 1-128 of `[A-Za-z0-9_-]`.
    /// The file itself is read at each sweep.
    pub fn new(config: FileConfig) -> Result<Self, ConfigError> {
        let scope = match config.name {
            Some(n) => n,
            None => config
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned(),
        };
        validate_name("file source name (the file stem unless set)", &scope)?;
        Ok(Self {
            path: config.path,
            scope,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        "file"
    }

    fn provider(&self) -> &str {
        "file"
    }

    fn scope(&self) -> &str {
        &self.scope
    }

    fn source_uri(&self) -> String {
        format!("/file/{}", self.scope)
    }

    /// Declared assets span providers: every asset subject.
    fn subject_filter(&self) -> String {
        asset_filter(None, None)
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
                SourceError::Config(format!("{}: cannot read: {e}", self.path.display()))
            })?;
            let assets = parse(&self.path, &text)?;
            let prov = provenance("file", format!("file:{}", self.path.display()));
            Ok(Collected::complete(assets, prov))
        })
    }
}

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
    fn the_scope_is_the_file_stem() {
        let s = FileSource::new(FileConfig {
            path: "/srv/declared/assets.yaml".into(),
            name: None,
        })
        .unwrap();
        assert_eq!(
            (s.scope(), s.source_uri().as_str()),
            ("assets", "/file/assets")
        );
        assert_eq!(s.subject_filter(), "inventory.asset.>");
        let e = FileSource::new(FileConfig {
            path: "/srv/my assets.yaml".into(),
            name: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("must be 1-128 characters"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/assets.yaml");
        let assets = parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let count = |p: &str| assets.iter().filter(|a| a.provider == p).count();
        assert_eq!((count("aws"), count("gcp"), count("azure")), (4, 3, 3));
        assert!(assets.iter().all(|a| !a.labels.is_empty()));
    }

    #[tokio::test]
    async fn a_missing_file_is_a_config_error_naming_it() {
        let s = FileSource::new(FileConfig {
            path: "/nonexistent/assets.yaml".into(),
            name: None,
        })
        .unwrap();
        let e = s.collect().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/assets.yaml: cannot read"),
            "{e}"
        );
    }
}
