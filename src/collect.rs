//! `inventory collect <source>` and the collectors that `inventory up` runs.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_producers::config::{DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES};
use inventory_producers::sources::{
    AwsConfig, AwsSource, AzureConfig, AzureSource, FileConfig, FileSource, GcpConfig, GcpSource,
    GrafanaConfig, GrafanaSource, PrometheusConfig, PrometheusSource,
};
use inventory_producers::{run_every, run_sweep, Source, SweepError, SweepOptions, SweepReport};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cli::{CollectArgs, Global, SourceArgs};

/// Builds the source a `collect` subcommand names, reading provider answers of at most
/// `max_response_bytes` each; errors name the setting.
async fn source(args: SourceArgs, max_response_bytes: u64) -> anyhow::Result<Box<dyn Source>> {
    Ok(match args {
        SourceArgs::File { file } => Box::new(FileSource::new(FileConfig {
            path: file,
            name: None,
        })?),
        SourceArgs::Prometheus {
            url,
            name,
            timeout_secs,
        } => Box::new(PrometheusSource::new(PrometheusConfig {
            name,
            timeout: Duration::from_secs(timeout_secs),
            max_response_bytes,
            ..PrometheusConfig::new(url)
        })?),
        SourceArgs::Aws => Box::new(AwsSource::connect(AwsConfig::from_env()?).await?),
        SourceArgs::Gcp => Box::new(GcpSource::new(GcpConfig {
            max_response_bytes,
            ..GcpConfig::from_env()?
        })?),
        SourceArgs::Azure => Box::new(AzureSource::new(AzureConfig {
            max_response_bytes,
            ..AzureConfig::from_env()?
        })?),
        SourceArgs::Grafana {
            url,
            token,
            name,
            timeout_secs,
        } => Box::new(GrafanaSource::new(GrafanaConfig {
            name,
            token,
            timeout: Duration::from_secs(timeout_secs),
            max_response_bytes,
            ..GrafanaConfig::new(url)
        })?),
    })
}

/// Runs one sweep, or sweeps `--every` interval until cancelled.
pub async fn run(
    global: &Global,
    args: CollectArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let source = source(args.source, args.max_response_bytes).await?;
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
/// configured, Grafana.
pub async fn local_collectors(
    assets_file: &Path,
    prometheus_url: &str,
    grafana_url: Option<&str>,
    grafana_token: Option<String>,
) -> anyhow::Result<Vec<Box<dyn Source>>> {
    let mut out: Vec<Box<dyn Source>> = vec![
        source(
            SourceArgs::File {
                file: assets_file.to_owned(),
            },
            DEFAULT_MAX_RESPONSE_BYTES,
        )
        .await
        .context("INVENTORY_ASSETS_FILE")?,
        source(
            SourceArgs::Prometheus {
                url: prometheus_url.to_owned(),
                name: "prom-local".to_owned(),
                timeout_secs: DEFAULT_HTTP_TIMEOUT.as_secs(),
            },
            DEFAULT_MAX_RESPONSE_BYTES,
        )
        .await?,
    ];
    if let Some(url) = grafana_url {
        out.push(
            source(
                SourceArgs::Grafana {
                    url: url.to_owned(),
                    token: grafana_token,
                    name: "grafana-default".to_owned(),
                    timeout_secs: DEFAULT_HTTP_TIMEOUT.as_secs(),
                },
                DEFAULT_MAX_RESPONSE_BYTES,
            )
            .await?,
        );
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
