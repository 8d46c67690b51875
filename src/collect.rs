//! `inventory collect <source>` and the collectors that `inventory up` runs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_producers::sources::{Common, FileConfig, PrometheusConfig, SourceArgs};
use inventory_producers::{run_every, run_sweep, Source, SweepError, SweepOptions, SweepReport};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cli::{CollectArgs, Global};

/// Runs one sweep, or sweeps `--every` interval until cancelled.
pub async fn run(
    global: &Global,
    args: CollectArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let common = Common {
        max_response_bytes: args.max_response_bytes,
    };
    let source = args.source.build(common).await?;
    let opts = SweepOptions {
        max_delete_share: args.max_delete_share,
        force_deletions: args.force_deletions,
        retry: crate::nats_config(global, "").retry,
        ..SweepOptions::default()
    };
    let (js, stream) =
        crate::connect(global, &format!("inventory-collect-{}", source.name())).await?;
    match args.every {
        None => {
            let report = run_sweep(&js, &stream, source.as_ref(), &opts).await?;
            log_report(&report);
            Ok(ExitCode::from(
                u8::try_from(report.exit_code()).unwrap_or(1),
            ))
        }
        Some(every) => {
            let summary = run_every(
                &js,
                &stream,
                source.as_ref(),
                &opts,
                every,
                cancel,
                log_result,
            )
            .await;
            info!(
                sweeps = summary.sweeps,
                failures = summary.failures,
                "collector stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn log_report(r: &SweepReport) {
    info!(
        collector = %r.collector,
        scope = %r.scope,
        status = r.status.as_str(),
        discovered = r.counts.discovered,
        changed = r.counts.changed,
        deleted = r.counts.deleted,
        unchanged = r.counts.unchanged,
        withheld = r.counts.deletions_withheld,
        error = r.error.as_deref().unwrap_or(""),
        "sweep recorded"
    );
}

fn log_result(r: &Result<SweepReport, SweepError>) {
    match r {
        Ok(report) => log_report(report),
        Err(e) => error!(error = %e, "sweep could not be recorded"),
    }
}

/// The collectors of `inventory up`: the declared-assets file, the local Prometheus and, when
/// `GRAFANA_URL` is set, Grafana with the settings of `inventory collect grafana` (read from
/// the environment). Each is built as its `collect` subcommand builds it.
pub async fn local_collectors(
    file: FileConfig,
    prometheus_url: &str,
) -> anyhow::Result<Vec<Box<dyn Source>>> {
    let mut settings = vec![
        SourceArgs::File(file),
        SourceArgs::Prometheus(PrometheusConfig {
            name: "prom-local".to_owned(),
            ..PrometheusConfig::new(prometheus_url)
        }),
    ];
    let grafana = SourceArgs::from_env("grafana").map_err(|e| {
        let args = ["inventory", "collect", "grafana"].map(String::from);
        let line = crate::cli::one_line_error(&e, &args);
        anyhow::anyhow!("{}", line.trim_start_matches("error: ").to_owned())
    })?;
    settings.extend(grafana);
    let mut out = Vec::with_capacity(settings.len());
    for s in settings {
        let file = matches!(s, SourceArgs::File(_));
        let source = s.build(Common::default()).await;
        out.push(if file {
            source.context("INVENTORY_ASSETS_FILE")?
        } else {
            source?
        });
    }
    Ok(out)
}

/// Runs every collector in its own loop until cancelled.
pub async fn run_local(
    nats: NatsConfig,
    stream: StreamSettings,
    collectors: Vec<Box<dyn Source>>,
    every: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let client = inventory_bus::connect(&nats).await?;
    let js = async_nats::jetstream::new(client);
    let stream = inventory_bus::ensure_stream(&js, &stream).await?;
    let opts = SweepOptions {
        retry: nats.retry,
        ..SweepOptions::default()
    };
    let loops = collectors.iter().map(|source| {
        run_every(
            &js,
            &stream,
            source.as_ref(),
            &opts,
            every,
            cancel.clone(),
            log_result,
        )
    });
    futures::future::join_all(loops).await;
    Ok(())
}
