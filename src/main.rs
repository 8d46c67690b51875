//! `inventory`: the one binary of asset-inventory. See `inventory --help`.

mod cli;
mod collect;
mod evidence;
mod replay;
mod up;
mod verify;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use inventory_bus::{NatsConfig, StreamSettings};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use cli::{Cli, Command, Global, LogFormat};

/// mimalloc: the projector and the API allocate and free many small strings per event, across
/// threads, where glibc's allocator spent about a tenth of the replay's CPU (see BENCHMARKS.md);
/// its settings are `inventory_allocator::configure`'s.
#[global_allocator]
static GLOBAL: inventory_allocator::MiMalloc = inventory_allocator::MiMalloc;

fn main() -> ExitCode {
    inventory_allocator::configure();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            eprintln!("{}", cli::one_line_error(&e, &args));
            return ExitCode::from(64);
        }
    };
    init_tracing(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INVENTORY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.compact().init(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let cancel = shutdown_token();
    let global = cli.global;
    match cli.command {
        Command::Collect(args) => collect::run(&global, args, cancel).await,
        Command::Project(args) => {
            let (js, stream) = connect(&global, "inventory-project").await?;
            drop(js);
            let store = inventory_projector::Store::open(&args.db)
                .with_context(|| format!("INVENTORY_DB {}", args.db.display()))?;
            let (tx, rx) = tokio::sync::watch::channel(inventory_projector::Status::default());
            let opts = inventory_projector::RunOptions {
                stop_when_caught_up: !args.follow,
                ..Default::default()
            };
            let store = inventory_projector::run(stream, store, cancel, tx, opts)
                .await
                .map_err(|e| projection_failed(&args.db, e))?;
            let status = rx.borrow().clone();
            info!(
                db = %args.db.display(),
                checkpoint = store.checkpoint(),
                applied = status.applied_total,
                rejected = status.rejected_total,
                "projection written"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let cfg = serve_config(&global, &args)?;
            inventory_query_api::serve(cfg, cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(args) => up::run(&global, args, cancel).await,
        Command::Replay(args) => replay::run(&global, args, cancel).await,
        Command::Verify(args) => verify::run(&global, args, cancel).await,
        Command::Watch(args) => watch::run(&global, args, cancel).await,
        Command::Keygen(args) => evidence::keygen::run(args),
        Command::Checkpoint(args) => evidence::checkpoint::run(&global, args, cancel).await,
        Command::Prove(args) => evidence::prove::run(&global, args).await,
        Command::VerifyProof(args) => evidence::prove::verify_proof(args),
    }
}

/// The one line `inventory project` ends with when its projector stops: a database of another
/// stream or one that can no longer be completed names the file and the way out.
fn projection_failed(
    db: &std::path::Path,
    e: inventory_projector::ProjectorError,
) -> anyhow::Error {
    use inventory_projector::ErrorKind;
    let db = db.display();
    match e.kind() {
        ErrorKind::StreamChanged => anyhow::anyhow!(
            "{db} belongs to another stream: {e}. Delete {db} (or pass another --db) to rebuild it from the current stream"
        ),
        ErrorKind::Gap => anyhow::anyhow!("{db}: {e}"),
        ErrorKind::Other => anyhow::Error::new(e),
    }
}

/// NATS settings from the global flags.
pub fn nats_config(global: &Global, name: &str) -> NatsConfig {
    NatsConfig {
        url: global.nats_url.clone(),
        creds_file: global.nats_creds.clone(),
        user: global.nats_user.clone(),
        password: global.nats_password.clone(),
        token: global.nats_token.clone(),
        name: name.to_owned(),
        retry: inventory_bus::RetryPolicy::with_budget(std::time::Duration::from_secs(
            global.nats_retry_secs,
        )),
    }
}

/// Stream settings from the global flags.
pub fn stream_settings(global: &Global) -> StreamSettings {
    StreamSettings {
        replicas: usize::from(global.stream_replicas),
        max_age: global.stream_max_age,
        ..StreamSettings::default()
    }
}

/// Connects to NATS and ensures the INVENTORY stream.
pub async fn connect(
    global: &Global,
    name: &str,
) -> anyhow::Result<(
    async_nats::jetstream::Context,
    async_nats::jetstream::stream::Stream,
)> {
    let client = inventory_bus::connect(&nats_config(global, name))
        .await
        .context("NATS_URL")?;
    let js = async_nats::jetstream::new(client);
    let stream = inventory_bus::ensure_stream(&js, &stream_settings(global)).await?;
    Ok((js, stream))
}

/// Connects to NATS and opens the existing INVENTORY stream (read-only commands never create it).
pub async fn open_stream(
    global: &Global,
    name: &str,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    let client = inventory_bus::connect(&nats_config(global, name))
        .await
        .context("NATS_URL")?;
    let js = async_nats::jetstream::new(client);
    js.get_stream(inventory_schemas::STREAM_NAME)
        .await
        .with_context(|| {
            format!(
                "stream {} at {}",
                inventory_schemas::STREAM_NAME,
                inventory_bus::redact_url(&global.nats_url)
            )
        })
}

/// The API's configuration from flags and environment.
pub fn serve_config(
    global: &Global,
    args: &cli::ServeArgs,
) -> anyhow::Result<inventory_query_api::ServeConfig> {
    let tokens =
        inventory_query_api::TokenSet::parse(&args.api_tokens).context("INVENTORY_API_TOKENS")?;
    Ok(inventory_query_api::ServeConfig {
        listen: args.listen,
        db_path: args.db.clone(),
        nats: nats_config(global, "inventory-api"),
        stream: stream_settings(global),
        tokens,
        sweep_interval: args.sweep_interval,
        public_url: None,
        projector_batch: usize::try_from(args.projector_batch).unwrap_or(usize::MAX),
        projector_batch_bytes: usize::try_from(args.projector_batch_mib << 20)
            .unwrap_or(usize::MAX),
        duckdb_memory_mib: args.duckdb_memory_mib,
        feed: inventory_query_api::FeedSettings {
            heartbeat: args.feed_heartbeat,
            slow_after: args.feed_slow_after,
            max_clients: usize::try_from(args.feed_max_clients).unwrap_or(usize::MAX),
            buffer_bytes: usize::try_from(args.feed_buffer_bytes).unwrap_or(usize::MAX),
        },
        limits: inventory_query_api::Limits {
            max_body_bytes: args.max_body_bytes,
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            request_timeout: args.request_timeout,
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_reads: usize::try_from(args.max_reads).unwrap_or(usize::MAX),
            read_wait: args.read_wait,
        },
        ready: inventory_query_api::ReadyBounds {
            stall_after: args.ready_stall_after,
            max_lag: args.ready_max_lag,
        },
        integrity: inventory_query_api::IntegrityConfig {
            keys: inventory_evidence::nats::load_verifiers(&args.verifier_key)
                .map_err(|e| anyhow::anyhow!("INVENTORY_VERIFIER_KEY {e}"))?,
            every: args.integrity_every,
        },
    })
}

/// A token cancelled on SIGTERM or Ctrl-C; a second signal exits at once.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down (signal received; a second one exits at once)");
        t.cancel();
        wait_for_signal().await;
        warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Bounds a shutdown step.
pub async fn bounded<F: std::future::Future>(
    what: &str,
    limit: Duration,
    f: F,
) -> Option<F::Output> {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => Some(v),
        Err(_) => {
            warn!(
                step = what,
                seconds = limit.as_secs(),
                "shutdown step timed out"
            );
            None
        }
    }
}
