//! The sources. Each module holds one source's config, `collect` and `normalise`; adding a
//! source means adding a module here (and its subcommand in the CLI).

pub mod aws;
mod aws_walk;
pub mod azure;
mod azure_auth;
mod azure_rest;
pub mod file;
pub mod gcp;
mod gcp_client;
pub mod grafana;
mod http;
pub mod prometheus;
mod retry;

pub use aws::{AwsConfig, AwsSource};
pub use azure::{AzureConfig, AzureSource};
pub use file::{FileConfig, FileSource};
pub use gcp::{GcpConfig, GcpSource};
pub use grafana::{GrafanaConfig, GrafanaSource};
pub use prometheus::{PrometheusConfig, PrometheusSource};
