//! The sources, one folder each with the same files (see docs/collectors.md, "Adding a
//! source"):
//!
//! - `mod.rs`: the source itself, its [`Source`] impl (`collect`: one sweep's listing) and the
//!   [`Settings`] impl that builds it;
//! - `config.rs`: its settings, a clap `Args` struct (every setting a flag with its environment
//!   variable, its default in the `#[arg]` attribute), and their validation, whose error names
//!   the setting;
//! - `client.rs`: the calls to the provider's API;
//! - `normalise.rs`: a provider answer → the asset document.
//!
//! A source may add a file for a part only it has (`aws/walk.rs`, the OU-tree walk;
//! `azure/auth.rs`, the credential choice). What two sources share lives in [`shared`].
//!
//! The `registry!` below is the one list of sources: it declares the
//! `inventory collect <source>` subcommands ([`SourceArgs`]) and how each is built. Adding a
//! source is its folder, its `pub mod` line and its line in the registry (the `mod` lines stay
//! outside the macro so that rustfmt and other tools, which do not expand macros, see the
//! folders).

pub mod aws;
pub mod azure;
pub mod file;
pub mod gcp;
pub mod grafana;
pub mod prometheus;
pub mod shared;

use std::future::Future;

use crate::config::{ConfigError, DEFAULT_MAX_RESPONSE_BYTES};
use crate::source::Source;

/// Settings every `inventory collect` subcommand shares, handed to a source as it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Common {
    /// Largest provider answer read, in bytes (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`); sources
    /// whose SDK reads answers itself (AWS) cannot apply it.
    pub max_response_bytes: u64,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A source's settings (its `config.rs`): parsed once by clap, from flags and environment
/// variables, then validated and turned into the source.
pub trait Settings: clap::Args + clap::FromArgMatches + Sized {
    /// Validates the settings (the error names the wrong one) and builds the source.
    fn build(
        self,
        common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send;
}

/// Declares the sources: `Variant(module::Settings, module::Source)`, the variant's doc being
/// the subcommand's help.
macro_rules! registry {
    ($($(#[doc = $doc:tt])* $variant:ident($module:ident::$settings:ident, $source:ident),)+) => {
        $(pub use $module::{$settings, $source};)+

        /// Every source, as the subcommand of `inventory collect` that names it, with its
        /// settings.
        #[derive(Debug, clap::Subcommand)]
        pub enum SourceArgs {
            $($(#[doc = $doc])* $variant($settings),)+
        }

        impl SourceArgs {
            /// Validates the settings and builds the source (see [`Settings::build`]).
            pub async fn build(self, common: Common) -> Result<Box<dyn Source>, ConfigError> {
                match self {
                    $(Self::$variant(settings) => settings.build(common).await,)+
                }
            }
        }
    };
}

registry! {
    /// Declared assets from a YAML file.
    File(file::FileConfig, FileSource),
    /// A Prometheus server: health, build and runtime info.
    Prometheus(prometheus::PrometheusConfig, PrometheusSource),
    /// AWS Organizations: every account with its OU path and tags.
    Aws(aws::AwsConfig, AwsSource),
    /// GCP Resource Manager: every project the principal can see, with its folder path.
    Gcp(gcp::GcpConfig, GcpSource),
    /// Azure Resource Manager: every subscription with its management-group path.
    Azure(azure::AzureConfig, AzureSource),
    /// A Grafana server: /api/health.
    Grafana(grafana::GrafanaConfig, GrafanaSource),
}

impl SourceArgs {
    /// The settings of the source `name` (`file`, `grafana`, ...) from the environment alone,
    /// as `inventory collect <name>` without flags would read them; `Ok(None)` when a required
    /// one is not set (e.g. `GRAFANA_URL`). For the collectors `inventory up` runs.
    pub fn from_env(name: &str) -> Result<Option<Self>, clap::Error> {
        use clap::{FromArgMatches as _, Subcommand as _};
        let cmd = Self::augment_subcommands(clap::Command::new("collect").no_binary_name(true))
            .subcommand_required(true);
        match cmd.try_get_matches_from([name]) {
            Ok(matches) => Self::from_arg_matches(&matches).map(Some),
            Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{CommandFactory as _, Parser};

    #[derive(Debug, Parser)]
    struct Collect {
        #[command(subcommand)]
        source: SourceArgs,
    }

    #[test]
    fn the_retry_waits_default_to_the_retry_machinery_s() {
        let max = inventory_bus::retry::DEFAULT_MAX_WAIT;
        assert_eq!(GcpConfig::default().retry_max, max);
        assert_eq!(AzureConfig::new("x").retry_max, max);
    }

    #[test]
    fn every_setting_of_every_source_is_a_flag_with_its_variable() {
        let cmd = Collect::command();
        cmd.clone().debug_assert();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(
            names,
            ["file", "prometheus", "aws", "gcp", "azure", "grafana"]
        );
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments().filter(|a| a.get_id() != "help") {
                assert!(
                    arg.get_long().is_some() && arg.get_env().is_some(),
                    "{} --{:?}: every setting has a flag and a variable",
                    sub.get_name(),
                    arg.get_long()
                );
            }
        }
    }
}
