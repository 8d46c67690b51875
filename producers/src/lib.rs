//! asset-inventory collectors (DESIGN §2, §4): a [`Source`] lists the assets of its scope, and
//! the shared publisher ([`run_sweep`]) diffs that listing against the last event of every subject
//! of the scope and publishes only what appeared (`discovered`), changed (`changed`) or
//! disappeared from a complete sweep (`deleted`), each write conditional on the sequence it saw,
//! then one `sweep.completed`.
//!
//! Sources: [`sources::FileSource`] (declared assets in YAML), [`sources::PrometheusSource`],
//! [`sources::GrafanaSource`].
//!
//! Exit codes for a one-shot `inventory collect` ([`SweepReport::exit_code`]): `0` the sweep was
//! `ok`, `2` it was `partial` (incomplete listing, deletions withheld by the mass-deletion guard,
//! writes that lost a race twice), `1` it `failed` or could not be recorded.

pub use sources::shared::config;
mod diff;
mod publisher;
pub mod source;
pub mod sources;
pub mod sweep;

pub use config::ConfigError;
pub use source::{
    CollectFuture, Collected, Source, SourceError, SourceErrorKind, COLLECTOR_VERSION,
};
pub use sweep::{
    prepare, run_every, run_sweep, LoopSummary, SweepError, SweepOptions, SweepPlan, SweepReport,
};
