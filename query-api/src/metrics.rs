//! Prometheus metrics: HTTP request counts and latencies by route template, projector progress,
//! and per collector scope the newest sweep's outcome (read from the read model at scrape time).

use std::collections::HashMap;
use std::time::Duration;

use inventory_projector::read::SweepRow;
use inventory_projector::Status;
use inventory_schemas::RejectReason;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tracing::warn;

/// Route label of requests that matched no route (bounded cardinality).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// What a scrape reads from the read model.
pub struct ReadModelFigures {
    /// Rejected messages by reason code.
    pub rejected: Vec<(String, u64)>,
    /// The newest sweep of each collector scope.
    pub sweeps: Vec<SweepRow>,
    /// DuckDB's memory for the database (`read::duckdb_memory_bytes`).
    pub duckdb_memory_bytes: u64,
}

/// The API's metrics, in a registry of their own.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    lag: IntGauge,
    applied_seq: IntGauge,
    ready: IntGauge,
    duckdb_memory: IntGauge,
    rejected: IntCounterVec,
    sweep_success: IntGaugeVec,
    last_success: GaugeVec,
    /// poem's route pattern (`/api/v1/assets/:param0`) → the spec's template (`/api/v1/assets/{key}`).
    templates: HashMap<String, String>,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // The metric definitions are static; a failure here is a programming error caught by tests.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    /// Metrics for an API whose spec has `paths` (templates such as `/api/v1/assets/{key}`);
    /// `extra_routes` are plain routes served outside the spec (`/openapi.json`, `/docs`).
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>, extra_routes: &[&str]) -> Self {
        let registry = Registry::new();
        let http_requests = must(IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route template and status.",
            ),
            &["method", "route", "status"],
        ));
        let http_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        ));
        let lag = must(IntGauge::new(
            "inventory_projector_lag_events",
            "Events in the stream not yet applied to this replica's read model.",
        ));
        let applied_seq = must(IntGauge::new(
            "inventory_projector_applied_seq",
            "Last stream sequence applied to the read model.",
        ));
        let ready = must(IntGauge::new(
            "inventory_projector_ready",
            "1 when /readyz answers ready: caught up with the stream's tip at start, not failed, not rebuilding.",
        ));
        let duckdb_memory = must(IntGauge::new(
            "inventory_duckdb_memory_bytes",
            "Bytes DuckDB holds for the read model (its block cache and transactions in progress, capped by INVENTORY_DUCKDB_MEMORY_MIB): the database's share of the process's resident memory.",
        ));
        let rejected = must(IntCounterVec::new(
            Opts::new(
                "inventory_events_rejected_total",
                "Messages the projector did not apply, by reason: not a valid event of the NATS subject they were stored on, or not foldable (see GET /api/v1/rejected).",
            ),
            &["reason"],
        ));
        // Every reason is exposed from the start (at 0), so alerts see a rise from nothing.
        for r in RejectReason::ALL {
            rejected.with_label_values(&[r.as_str()]);
        }
        let labels = ["source", "provider", "scope"];
        let sweep_success = must(IntGaugeVec::new(
            Opts::new(
                "inventory_collector_last_sweep_success",
                "1 when the newest sweep of a collector scope had status ok, else 0.",
            ),
            &labels,
        ));
        let last_success = must(GaugeVec::new(
            Opts::new(
                "inventory_collector_last_success_timestamp_seconds",
                "Unix time at which the newest ok sweep of a collector scope finished.",
            ),
            &labels,
        ));
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(lag.clone()),
            Box::new(applied_seq.clone()),
            Box::new(ready.clone()),
            Box::new(duckdb_memory.clone()),
            Box::new(rejected.clone()),
            Box::new(sweep_success.clone()),
            Box::new(last_success.clone()),
        ] {
            must(registry.register(c));
        }
        let mut templates: HashMap<String, String> = paths
            .into_iter()
            .map(|t| (poem_pattern(t), t.to_owned()))
            .collect();
        for r in extra_routes {
            // A nested endpoint's root matches as `/docs` or `/docs/`.
            templates.insert((*r).to_owned(), (*r).to_owned());
            templates.insert(format!("{r}/"), (*r).to_owned());
        }
        Self {
            registry,
            http_requests,
            http_duration,
            lag,
            applied_seq,
            ready,
            duckdb_memory,
            rejected,
            sweep_success,
            last_success,
            templates,
        }
    }

    /// The route label for poem's matched pattern (unknown patterns collapse to one label).
    pub fn route_label(&self, pattern: Option<&str>) -> &str {
        pattern
            .and_then(|p| self.templates.get(p))
            .map_or(UNMATCHED_ROUTE, String::as_str)
    }

    /// Records one request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Renders the exposition with the projector's status, whether `/readyz` answers ready
    /// (`ready`, decided by `service::health::readiness` alone) and what was read from the read
    /// model (`None` when it could not be read: those families are then left as last set).
    pub fn render(&self, status: &Status, ready: bool, read: Option<&ReadModelFigures>) -> String {
        self.lag.set(to_i64(status.lag()));
        self.applied_seq.set(to_i64(status.applied_seq));
        self.ready.set(i64::from(ready));
        let (rejected, sweeps) = match read {
            Some(r) => {
                self.duckdb_memory.set(to_i64(r.duckdb_memory_bytes));
                (Some(r.rejected.as_slice()), Some(r.sweeps.as_slice()))
            }
            None => (None, None),
        };
        for (code, total) in rejected.unwrap_or_default() {
            // Label values come from the bounded set of codes, never from the table as such.
            let Some(reason) = RejectReason::from_code(code) else {
                continue;
            };
            // A counter only goes up: add what the table gained since the last scrape.
            let counter = self.rejected.with_label_values(&[reason.as_str()]);
            let seen = counter.get();
            if *total > seen {
                counter.inc_by(total - seen);
            }
        }
        if let Some(rows) = sweeps {
            self.sweep_success.reset();
            self.last_success.reset();
            for r in rows {
                let labels = [r.source.as_str(), r.provider.as_str(), r.scope.as_str()];
                self.sweep_success
                    .with_label_values(&labels)
                    .set(i64::from(r.status == "ok"));
                if let Some(ok) = r.last_ok_at {
                    self.last_success
                        .with_label_values(&labels)
                        .set(ok.timestamp_micros() as f64 / 1e6);
                }
            }
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// poem-openapi registers `/a/{x}/b/{y}` as `/a/:param0/b/:param1`.
fn poem_pattern(template: &str) -> String {
    let mut n = 0;
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                let s = format!(":param{n}");
                n += 1;
                s
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_map_poem_patterns() {
        let m = Metrics::new(["/api/v1/assets/{key}", "/healthz"], &["/openapi.json"]);
        assert_eq!(
            m.route_label(Some("/api/v1/assets/:param0")),
            "/api/v1/assets/{key}"
        );
        assert_eq!(m.route_label(Some("/healthz")), "/healthz");
        assert_eq!(m.route_label(Some("/openapi.json")), "/openapi.json");
        assert_eq!(m.route_label(Some("/nope")), UNMATCHED_ROUTE);
        assert_eq!(m.route_label(None), UNMATCHED_ROUTE);
        assert_eq!(poem_pattern("/a/{x}/b/{y}"), "/a/:param0/b/:param1");
    }

    #[test]
    fn rejected_counters_follow_the_table_by_reason_without_going_down() {
        let m = Metrics::new(["/healthz"], &[]);
        let s = Status::default();
        let counts = |n: u64| ReadModelFigures {
            rejected: vec![("subject_mismatch".to_owned(), n), ("bogus".to_owned(), 7)],
            sweeps: Vec::new(),
            duckdb_memory_bytes: 1 << 20,
        };
        let line =
            |n: u64| format!("inventory_events_rejected_total{{reason=\"subject_mismatch\"}} {n}");
        let text = m.render(&s, s.is_ready(), Some(&counts(3)));
        assert!(text.contains(&line(3)), "{text}");
        assert!(
            text.contains("inventory_events_rejected_total{reason=\"future_time\"} 0"),
            "{text}"
        );
        assert!(!text.contains("bogus"), "{text}");
        let text = m.render(&s, s.is_ready(), Some(&counts(2)));
        assert!(text.contains(&line(3)), "{text}");
        let text = m.render(&s, s.is_ready(), Some(&counts(5)));
        assert!(text.contains(&line(5)), "{text}");
    }
}
