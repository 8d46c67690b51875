//! Settings of the `file` source.

use std::path::PathBuf;

use serde::Deserialize;

/// Settings of the `file` source: the flag of `inventory collect file` (and `inventory up`),
/// with its environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The YAML file of declared assets.
    #[arg(
        long = "file",
        alias = "assets-file",
        env = "INVENTORY_ASSETS_FILE",
        value_name = "FILE",
        default_value = "examples/assets.yaml"
    )]
    pub path: PathBuf,
    /// Scope name (`/file/<name>`); default: the file stem.
    #[serde(default)]
    #[arg(skip)]
    pub name: Option<String>,
}
