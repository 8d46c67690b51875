//! The sources. Each module holds one source's config, `collect` and `normalise`; adding a
//! source means adding a module here (and its subcommand in the CLI).

pub mod file;
pub mod grafana;
mod http;
pub mod prometheus;

pub use file::{FileConfig, FileSource};
pub use grafana::{GrafanaConfig, GrafanaSource};
pub use prometheus::{PrometheusConfig, PrometheusSource};
