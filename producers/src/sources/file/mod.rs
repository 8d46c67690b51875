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

mod client;
mod config;
mod normalise;

use std::future::Future;
use std::path::{Path, PathBuf};

use inventory_schemas::asset_filter;

pub use config::FileConfig;
pub use normalise::parse;

use crate::config::{validate_name, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source};
use crate::sources::{Common, Settings};

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

/// The file is local: no limit on answers applies.
impl Settings for FileConfig {
    fn build(
        self,
        _common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        std::future::ready(FileSource::new(self).map(|s| Box::new(s) as Box<dyn Source>))
    }
}

impl Source for FileSource {
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
            let text = client::read(&self.path).await?;
            let assets = parse(&self.path, &text)?;
            let prov = provenance("file", format!("file:{}", self.path.display()));
            Ok(Collected::complete(assets, prov))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
