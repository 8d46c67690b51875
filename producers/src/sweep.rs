//! The shared publisher (DESIGN §4 "Writes are conditional"): collect a source, read the last
//! event of every subject of its scope, publish only what appeared, changed or disappeared —
//! each write conditional on the sequence it saw — and record one `sweep.completed`.
//!
//! A sweep is two steps so a caller can look before it writes (`--dry-run`): [`prepare`] collects
//! and diffs, [`SweepPlan::execute`] publishes. [`run_sweep`] does both; [`run_every`] repeats it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::Stream};
use chrono::{DateTime, Utc};
use inventory_bus::{self as bus, BusError, RetryPolicy};
use inventory_schemas::{
    encode_sweep, EventType, LastLink, Provenance, SchemaError, SweepCompleted, SweepCounts,
    SweepStatus,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::diff::{self, Context, Guard, Intent, PlannedWrite};
use crate::publisher::{self, Outcome};
use crate::source::{provenance, Source};

/// How a sweep behaves.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Largest share (0..=1) of the scope's live assets one sweep may delete; more (and at least
    /// two) is refused as a mass deletion. Default 0.5.
    pub max_delete_share: f64,
    /// Write the tombstones even when the mass-deletion guard refuses them (`--force-deletions`).
    pub force_deletions: bool,
    /// Publishes awaiting acknowledgement at once. Default 256.
    pub max_in_flight: usize,
    /// How long a read or publish that meets a stream leader change, a lost connection or an
    /// unreachable stream is retried (`NATS_RETRY_SECS`; default 30 s, well above an election).
    pub retry: RetryPolicy,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            max_delete_share: 0.5,
            force_deletions: false,
            max_in_flight: 256,
            retry: RetryPolicy::default(),
        }
    }
}

impl SweepOptions {
    fn retry(&self) -> RetryPolicy {
        self.retry
    }

    fn guard(&self) -> Guard {
        Guard {
            max_delete_share: self.max_delete_share.clamp(0.0, 1.0),
            force: self.force_deletions,
        }
    }
}

/// What a sweep did. The CLI maps [`SweepReport::exit_code`] to its exit status.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// Collector name (`file`, `prometheus`, `grafana`).
    pub collector: String,
    /// Provider word of the sweep subject (`inventory.sweep.<provider>`).
    pub provider: String,
    /// The collector's scope (file stem, endpoint name).
    pub scope: String,
    /// `ok`, `partial` (incomplete listing, withheld deletions, lost races) or `failed`.
    pub status: SweepStatus,
    /// The counts recorded in `sweep.completed`.
    pub counts: SweepCounts,
    /// What went wrong, for `partial` and `failed`.
    pub error: Option<String>,
    /// Writes refused because another writer moved the subject, re-diffed and retried.
    pub conflicts_retried: u64,
    /// Writes refused again after the re-diff (counted as errors; the sweep is `partial`).
    pub conflicts_unresolved: u64,
    /// Stream sequence of the `sweep.completed` event.
    pub sweep_seq: u64,
    /// Wall-clock time of the whole sweep (collect, diff, publish).
    pub duration: Duration,
}

impl SweepReport {
    /// The process exit code of a one-shot `collect`: 0 ok, 2 partial, 1 failed.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            SweepStatus::Ok => 0,
            SweepStatus::Partial => 2,
            SweepStatus::Failed => 1,
        }
    }
}

/// A sweep that could not be recorded: its `sweep.completed` event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// NATS refused or did not answer the final `sweep.completed` publish, after retries. The
    /// report says what the sweep did before that.
    #[error("sweep of {scope} could not be recorded: {source}", scope = report.scope)]
    Unrecorded {
        report: Box<SweepReport>,
        source: BusError,
    },
    /// The `sweep.completed` event could not be encoded (an invalid provider word).
    #[error("sweep event: {0}")]
    Encode(#[from] SchemaError),
}

/// A collected and diffed sweep, not yet published.
#[derive(Debug)]
pub struct SweepPlan {
    collector: String,
    provider: String,
    scope: String,
    source_uri: String,
    started_at: DateTime<Utc>,
    started: Instant,
    options: SweepOptions,
    provenance: Provenance,
    writes: Vec<PlannedWrite>,
    counts: SweepCounts,
    notes: Vec<String>,
    /// Set when the sweep failed before anything could be written.
    failure: Option<String>,
}

impl SweepPlan {
    /// The writes the sweep will make, in order: `(discovered|changed|deleted, asset key)`.
    pub fn writes(&self) -> impl Iterator<Item = (EventType, &str)> {
        self.writes.iter().map(|w| (w.ty, w.key.as_str()))
    }

    /// Counts so far: `seen`, `unchanged` and `deletions_withheld` are final; the others are
    /// filled in by [`SweepPlan::execute`].
    pub fn counts(&self) -> SweepCounts {
        self.counts
    }

    /// Why the sweep failed before publishing (collect error, unreadable stream).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Publishes the writes, re-diffing those that lose a race once, then the `sweep.completed`.
    pub async fn execute(
        mut self,
        js: &jetstream::Context,
        stream: &Stream,
    ) -> Result<SweepReport, SweepError> {
        let retry = self.options.retry();
        let mut conflicts_retried = 0;
        let mut conflicts_unresolved = 0;
        if self.failure.is_none() && !self.writes.is_empty() {
            let events: Vec<_> = self.writes.iter().map(|w| w.event.clone()).collect();
            match publisher::publish_batch(js, stream, &events, self.options.max_in_flight, retry)
                .await
            {
                Ok(outcomes) => {
                    let writes = std::mem::take(&mut self.writes);
                    for (write, outcome) in writes.iter().zip(outcomes) {
                        match outcome {
                            Outcome::Stored(_) => count(&mut self.counts, write.ty),
                            Outcome::Conflict => {
                                conflicts_retried += 1;
                                if !self.redo(js, stream, write).await {
                                    conflicts_unresolved += 1;
                                }
                            }
                        }
                    }
                }
                Err((outcomes, e)) => {
                    // Still failing after the whole retry budget: what was stored is counted,
                    // the rest is left for the next sweep (it diffs again), and the sweep is
                    // `partial`, not `failed`: what it recorded is true.
                    let mut unrecorded = 0u64;
                    for (write, outcome) in self.writes.iter().zip(outcomes) {
                        match outcome {
                            Some(Outcome::Stored(_)) => count(&mut self.counts, write.ty),
                            _ => unrecorded += 1,
                        }
                    }
                    self.notes.push(format!(
                        "{unrecorded} of {} write(s) not recorded: NATS still failing after the {} s retry budget: {e}",
                        self.writes.len(),
                        retry.budget.as_secs()
                    ));
                }
            }
        }
        if conflicts_unresolved > 0 {
            self.notes.push(format!(
                "{conflicts_unresolved} write(s) lost a race with another writer twice"
            ));
        }
        self.record(js, stream, conflicts_retried, conflicts_unresolved)
            .await
    }

    /// Handles one conflicting write: re-reads the subject, re-diffs, publishes once more.
    /// Returns whether the asset is now recorded as the sweep saw it.
    async fn redo(
        &mut self,
        js: &jetstream::Context,
        stream: &Stream,
        write: &PlannedWrite,
    ) -> bool {
        let subject = &write.event.subject;
        warn!(subject = %subject, key = %write.key, "write refused: another writer was first; re-reading");
        let retry = self.options.retry();
        let last = match publisher::read_with_retry(subject, retry, || {
            bus::last_per_subject(stream, subject)
        })
        .await
        {
            Ok(msgs) => msgs.last().map(diff::classify),
            Err(e) => {
                warn!(subject = %subject, error = %e, "re-read after a conflict failed");
                return false;
            }
        };
        let cx = Context {
            source_uri: &self.source_uri,
            scope: &self.scope,
            filter: subject,
            observed: Utc::now(),
        };
        let rewritten = match &write.intent {
            Intent::Upsert(asset) => diff::upsert_write(asset, last.as_ref(), &cx),
            Intent::Delete => match &last {
                Some(l) => diff::delete_write(l, &self.provenance, &cx),
                None => Ok(None),
            },
        };
        let rewritten = match rewritten {
            Ok(Some(w)) => w,
            Ok(None) => {
                // The other writer already recorded this state, or the asset is no longer ours.
                if matches!(write.intent, Intent::Upsert(_)) {
                    self.counts.unchanged += 1;
                }
                return true;
            }
            Err(e) => {
                warn!(subject = %subject, error = %e, "cannot re-encode after a conflict");
                return false;
            }
        };
        match publisher::publish_with_retry(js, stream, &rewritten.event, retry).await {
            Ok(Outcome::Stored(_)) => {
                count(&mut self.counts, rewritten.ty);
                true
            }
            Ok(Outcome::Conflict) => {
                warn!(subject = %subject, "write refused again after re-diff; giving up on it for this sweep");
                false
            }
            Err(e) => {
                warn!(subject = %subject, error = %e, "publish after a conflict failed");
                false
            }
        }
    }

    /// Publishes `sweep.completed` and builds the report.
    async fn record(
        self,
        js: &jetstream::Context,
        stream: &Stream,
        conflicts_retried: u64,
        conflicts_unresolved: u64,
    ) -> Result<SweepReport, SweepError> {
        let (status, error) = match self.failure {
            Some(f) => (SweepStatus::Failed, Some(f)),
            None if self.notes.is_empty() => (SweepStatus::Ok, None),
            None => (SweepStatus::Partial, Some(self.notes.join("; "))),
        };
        let finished_at = Utc::now();
        let duration = self.started.elapsed();
        let sweep = SweepCompleted {
            collector: self.collector.clone(),
            provider: self.provider.clone(),
            scope: self.scope.clone(),
            status,
            started_at: self.started_at,
            finished_at,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            counts: self.counts,
            error: error.clone(),
            provenance: self.provenance,
        };
        let event = encode_sweep(&sweep, &self.source_uri)?;
        let mut report = SweepReport {
            collector: self.collector,
            provider: self.provider,
            scope: self.scope,
            status,
            counts: self.counts,
            error,
            conflicts_retried,
            conflicts_unresolved,
            sweep_seq: 0,
            duration,
        };
        let c = report.counts;
        match publisher::publish_with_retry(js, stream, &event, self.options.retry()).await {
            Ok(Outcome::Stored(seq)) => report.sweep_seq = seq,
            // Sweep events carry no expected sequence, so the server has no reason to refuse one.
            Ok(Outcome::Conflict) => {
                return Err(SweepError::Unrecorded {
                    report: Box::new(report),
                    source: BusError::Conflict {
                        subject: event.subject,
                        expected: 0,
                    },
                })
            }
            Err(source) => {
                error!(collector = %report.collector, scope = %report.scope, error = %source, "sweep.completed could not be published");
                return Err(SweepError::Unrecorded {
                    report: Box::new(report),
                    source,
                });
            }
        }
        match status {
            SweepStatus::Ok => info!(
                collector = %report.collector, scope = %report.scope, status = status.as_str(),
                seen = c.seen, discovered = c.discovered, changed = c.changed, deleted = c.deleted,
                unchanged = c.unchanged, duration_ms = sweep.duration_ms, "sweep completed"
            ),
            _ => warn!(
                collector = %report.collector, scope = %report.scope, status = status.as_str(),
                seen = c.seen, discovered = c.discovered, changed = c.changed, deleted = c.deleted,
                unchanged = c.unchanged, deletions_withheld = c.deletions_withheld,
                error = report.error.as_deref().unwrap_or(""), duration_ms = sweep.duration_ms,
                "sweep completed"
            ),
        }
        Ok(report)
    }
}

fn count(counts: &mut SweepCounts, ty: EventType) {
    match ty {
        EventType::Discovered => counts.discovered += 1,
        EventType::Changed => counts.changed += 1,
        EventType::Deleted => counts.deleted += 1,
        EventType::SweepCompleted => {}
    }
}

/// Collects `source` and diffs the listing against the last event of every subject of its scope.
/// Never fails: a collect error or an unreadable stream becomes a plan that only records a
/// `failed` sweep.
pub async fn prepare(stream: &Stream, source: &dyn Source, options: &SweepOptions) -> SweepPlan {
    let started_at = Utc::now();
    let started = Instant::now();
    let mut plan = SweepPlan {
        collector: source.name().to_owned(),
        provider: source.provider().to_owned(),
        scope: source.scope().to_owned(),
        source_uri: source.source_uri(),
        started_at,
        started,
        options: options.clone(),
        provenance: provenance(source.name(), ""),
        writes: Vec::new(),
        counts: SweepCounts::default(),
        notes: Vec::new(),
        failure: None,
    };
    let collected = match source.collect().await {
        Ok(c) => c,
        Err(e) => {
            warn!(collector = %plan.collector, scope = %plan.scope, kind = ?e.kind(), error = %e, "collect failed");
            plan.failure = Some(e.to_string());
            return plan;
        }
    };
    plan.provenance = collected.provenance.clone();
    plan.counts.seen = collected.assets.len() as u64;
    let filter = source.subject_filter();
    let messages = match publisher::read_with_retry(&filter, options.retry(), || {
        bus::last_per_subject(stream, &filter)
    })
    .await
    {
        Ok(m) => m,
        Err(e) => {
            plan.failure = Some(format!("cannot read the last events of {filter}: {e}"));
            return plan;
        }
    };
    let last: HashMap<String, LastLink> = messages
        .iter()
        .map(|m| (m.subject.clone(), diff::classify(m)))
        .collect();
    let cx = Context {
        source_uri: &plan.source_uri,
        scope: &plan.scope,
        filter: &filter,
        observed: Utc::now(),
    };
    match diff::plan(&collected, &last, &cx, options.guard()) {
        Ok(p) => {
            plan.writes = p.writes;
            plan.counts.seen = p.seen;
            plan.counts.unchanged = p.unchanged;
            plan.counts.deletions_withheld = p.deletions_withheld;
            plan.notes = p.notes;
        }
        Err(e) => plan.failure = Some(format!("listing refused: {e}")),
    }
    plan
}

/// One sweep: [`prepare`], then [`SweepPlan::execute`].
pub async fn run_sweep(
    js: &jetstream::Context,
    stream: &Stream,
    source: &dyn Source,
    options: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    prepare(stream, source, options)
        .await
        .execute(js, stream)
        .await
}

/// What [`run_every`] did before it was cancelled.
#[derive(Debug, Clone, Default)]
pub struct LoopSummary {
    /// Sweeps run.
    pub sweeps: u64,
    /// Sweeps that were `failed` or could not be recorded.
    pub failures: u64,
    /// The last sweep's report, if it was recorded.
    pub last: Option<SweepReport>,
}

/// Runs a sweep every `interval` (measured from the start of the previous one) until `cancel`
/// fires (`--every 15m`). A sweep in progress is finished, not abandoned; the wait between sweeps
/// ends at once on cancellation. A failed sweep is logged and retried at the next tick.
/// `on_sweep` sees every result (for metrics or CLI output).
pub async fn run_every(
    js: &jetstream::Context,
    stream: &Stream,
    source: &dyn Source,
    options: &SweepOptions,
    interval: Duration,
    cancel: CancellationToken,
    mut on_sweep: impl FnMut(&Result<SweepReport, SweepError>) + Send,
) -> LoopSummary {
    let mut summary = LoopSummary::default();
    while !cancel.is_cancelled() {
        let next = tokio::time::Instant::now() + interval;
        let result = run_sweep(js, stream, source, options).await;
        summary.sweeps += 1;
        match &result {
            Ok(report) => {
                if report.status == SweepStatus::Failed {
                    summary.failures += 1;
                }
                summary.last = Some(report.clone());
            }
            Err(e) => {
                summary.failures += 1;
                error!(collector = %source.name(), scope = %source.scope(), error = %e, "sweep failed");
            }
        }
        on_sweep(&result);
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(next) => {}
        }
    }
    summary
}
