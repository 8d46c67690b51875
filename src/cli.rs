//! Command-line interface: every setting is a flag with an environment variable (DESIGN §7).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "inventory",
    version,
    about = "Event-sourced inventory of your cloud estate: collect, project, serve.",
    long_about = "Event-sourced inventory of an organisation's cloud estate.\n\n\
        Collectors sweep cloud and monitoring APIs and publish a CloudEvent for every asset that \
        appeared, changed or disappeared to the NATS JetStream stream INVENTORY (the append-only \
        source of truth). The projector folds the stream into DuckDB; the API serves it over HTTP.\n\n\
        Every option can also be set by the environment variable shown in its help."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every subcommand shares.
#[derive(Debug, Args)]
pub struct Global {
    /// NATS server URL(s), comma separated.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// NATS credentials file (JWT + NKey seed).
    #[arg(long, env = "NATS_CREDS", global = true)]
    pub nats_creds: Option<PathBuf>,
    /// NATS user name (with NATS_PASSWORD).
    #[arg(long, env = "NATS_USER", global = true)]
    pub nats_user: Option<String>,
    /// NATS password. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, global = true)]
    pub nats_password: Option<String>,
    /// NATS token. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true, global = true)]
    pub nats_token: Option<String>,
    /// Seconds a NATS write or read that meets a stream leader change, a lost connection or an
    /// unreachable stream is retried before it fails (well above a JetStream election's ~10 s).
    #[arg(long, env = "NATS_RETRY_SECS", default_value_t = inventory_bus::DEFAULT_NATS_RETRY_BUDGET.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub nats_retry_secs: u64,
    /// Replicas of the INVENTORY stream when this process creates it (1 dev, 3 production).
    #[arg(long, env = "INVENTORY_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5), global = true)]
    pub stream_replicas: u8,
    /// Maximum age of events when this process creates the stream ("0" keeps them forever).
    #[arg(long, env = "INVENTORY_STREAM_MAX_AGE", default_value = "0", value_parser = parse_duration_or_zero, global = true)]
    pub stream_max_age: std::time::Duration,
    /// Log format.
    #[arg(long, env = "INVENTORY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (production).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sweep one source and publish what appeared, changed or disappeared (once, or --every).
    ///
    /// Exit code: 0 sweep ok, 2 partial (some pages failed or deletions were withheld), 1 failed.
    Collect(CollectArgs),
    /// Fold the stream into a DuckDB file for analysts (until caught up, or --follow).
    Project(ProjectArgs),
    /// Serve the HTTP API (OpenAPI at /openapi.json) with an embedded projector.
    Serve(ServeArgs),
    /// Run the whole pipeline locally: NATS (unless one answers at NATS_URL), Prometheus, the
    /// API on 127.0.0.1:8080 and the collectors, until Ctrl-C.
    ///
    /// The collectors: the declared-assets file (--file), the Prometheus started here and, when
    /// GRAFANA_URL is set, Grafana, with every GRAFANA_* setting of `inventory collect grafana`.
    Up(UpArgs),
    /// Rebuild the state and history up to a past point (a stream sequence or a time) into a
    /// new DuckDB file, for an audit (see docs/audit.md).
    Replay(ReplayArgs),
    /// Prove the stream's history is intact: re-read it, recompute every asset's hash chain,
    /// check every prevseq link and that no message was removed (see docs/audit.md).
    ///
    /// Any integrity breach fails: a message that is not a valid event of the NATS subject it
    /// was stored on (forged, undecodable, from another collector's scope), a broken link, a
    /// removed or expired message. A reviewed breach can be accepted explicitly (--accept SEQ).
    ///
    /// Exit code: 0 intact (one summary line on stdout), 3 an integrity breach (the first one
    /// named, with its sequence and reason, on stdout and stderr), 1 could not verify (e.g. NATS
    /// unreachable).
    Verify(VerifyArgs),
    /// Print asset changes as they happen (one line per event, or --json), until Ctrl-C (see
    /// docs/subscribing.md).
    Watch(WatchArgs),
    /// Make an Ed25519 key pair for signing checkpoints (C2SP signed-note keys): the signer key
    /// file (mode 0600, keep it secret: a Kubernetes Secret) and the verifier key, also printed.
    Keygen(KeygenArgs),
    /// Sign a checkpoint of the whole stream (an RFC 6962 Merkle tree over every message) and
    /// append it to the INVENTORY_EVIDENCE stream; refuses if the stream no longer matches the
    /// newest checkpoint (see docs/audit.md).
    ///
    /// Exit code: 0 signed or already up to date, 3 refused (the stream differs from what was
    /// signed, or a message is missing), 1 could not run.
    Checkpoint(CheckpointArgs),
    /// Print (JSON) an inclusion proof of the message at SEQ against the newest signed
    /// checkpoint, or with --consistency-from a consistency proof between two checkpoints, for
    /// `inventory verify-proof` to check offline.
    Prove(ProveArgs),
    /// Check a proof written by `inventory prove`, offline (no NATS): the checkpoint's
    /// signature, the leaf recomputed from the included message, the path to the signed root.
    ///
    /// Exit code: 0 verified, 3 the proof fails, 1 could not check (e.g. no such file).
    VerifyProof(VerifyProofArgs),
}

/// A point in the stream's history (`seq:N` or an RFC 3339 time), as the API takes it.
pub use inventory_schemas::Point;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Last event to include: a stream sequence (seq:4711) or an RFC 3339 time (e.g.
    /// 2026-03-01T00:00:00Z: every event JetStream recorded at or before it).
    #[arg(long, value_name = "seq:N|TIME", value_parser = parse_point)]
    pub until: Point,
    /// DuckDB file to write; must not exist (unless --force).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify from this stream sequence instead of the first. The chain of an asset whose
    /// previous event lies before SEQ is anchored on that event, fetched by sequence.
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    pub from: Option<u64>,
    /// Also check anchors recorded earlier, `SEQ:CHAINHASH` (as printed by a previous verify):
    /// the asset event at SEQ must still carry that chain hash. Repeatable or comma separated.
    #[arg(long, value_name = "SEQ:CHAINHASH", env = "INVENTORY_VERIFY_ANCHORS", value_delimiter = ',', value_parser = parse_anchor)]
    pub anchor: Vec<(u64, String)>,
    /// Verify the signed checkpoints instead of the chains: each is signed by --key, each
    /// extends the previous, and the stream holds exactly what each signed (the first differing
    /// sequence is named).
    #[arg(long, requires = "key")]
    pub checkpoints: bool,
    /// Verifier key of the checkpoints (NAME+KEYID+KEY, or a file holding it, as written by
    /// `inventory keygen`). Repeatable or comma separated (e.g. across a key rotation).
    #[arg(
        long,
        value_name = "PUB",
        env = "INVENTORY_VERIFIER_KEY",
        value_delimiter = ','
    )]
    pub key: Vec<String>,
    /// With --checkpoints: also a signed checkpoint kept outside NATS (written by `inventory
    /// checkpoint --out`). Repeatable.
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    pub checkpoint_file: Vec<PathBuf>,
    /// Accept the integrity breach at this stream sequence (a reviewed incident, e.g. a forged
    /// message that was investigated): it is listed in the summary instead of failing the
    /// verification. Repeatable or comma separated; a SEQ that is not a breach fails.
    #[arg(long, value_name = "SEQ", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub accept: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only assets of this provider (aws, gcp, azure, prometheus, grafana, ...).
    #[arg(long, value_parser = parse_word)]
    pub provider: Option<String>,
    /// Only assets of this kind (account, project, subscription, endpoint, ...).
    #[arg(long, value_parser = parse_word)]
    pub kind: Option<String>,
    /// Start at this stream sequence (seq:N) or RFC 3339 time (default: only new events).
    #[arg(long, value_name = "seq:N|TIME", value_parser = parse_point)]
    pub since: Option<Point>,
    /// One JSON object per line: {"seq", "subject", "recorded_at", "event"} (see
    /// docs/subscribing.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(subcommand)]
    pub source: SourceArgs,
    /// Repeat the sweep at this interval (e.g. 15m) until stopped.
    #[arg(long, env = "INVENTORY_COLLECT_EVERY", value_parser = parse_duration, global = true)]
    pub every: Option<std::time::Duration>,
    /// Write tombstones even when more than --max-delete-share of the scope would be deleted.
    #[arg(long, global = true)]
    pub force_deletions: bool,
    /// Share of a scope's assets a single sweep may delete before the guard withholds deletions.
    #[arg(long, env = "INVENTORY_MAX_DELETE_SHARE", default_value_t = 0.5, value_parser = parse_share, global = true)]
    pub max_delete_share: f64,
    /// Largest provider response body a collector reads (bytes); a larger answer is refused
    /// (from Content-Length, or while streaming) and makes the sweep partial or failed.
    #[arg(long, env = "INVENTORY_COLLECT_MAX_RESPONSE_BYTES", default_value_t = inventory_producers::config::DEFAULT_MAX_RESPONSE_BYTES, value_parser = clap::value_parser!(u64).range(1024..=4_294_967_296), global = true)]
    pub max_response_bytes: u64,
}

/// The sources, one subcommand each: the registry in `inventory_producers::sources`, where
/// each source's settings are declared (flags and environment variables).
pub use inventory_producers::sources::SourceArgs;

#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// DuckDB file to write.
    #[arg(long, env = "INVENTORY_DB", default_value = "inventory.duckdb")]
    pub db: PathBuf,
    /// Keep following the stream after catching up.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "INVENTORY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// DuckDB file of this replica's read model (rebuilt from the stream when missing).
    #[arg(long, env = "INVENTORY_DB", default_value = ".data/api.duckdb")]
    pub db: PathBuf,
    /// API tokens: comma-separated `role:sha256hex` (role viewer|writer; the hash of the token).
    /// From the environment only (a secret on the command line is refused).
    #[arg(
        long,
        env = "INVENTORY_API_TOKENS",
        hide_env_values = true,
        default_value = ""
    )]
    pub api_tokens: String,
    /// Expected interval between a collector's sweeps; a scope with no ok sweep for twice this is stale.
    #[arg(long, env = "INVENTORY_SWEEP_INTERVAL", default_value = "15m", value_parser = parse_duration)]
    pub sweep_interval: std::time::Duration,
    /// Interval of the keep-alive comments on idle change feeds (GET /api/v1/changes/stream).
    #[arg(long, env = "INVENTORY_FEED_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub feed_heartbeat: std::time::Duration,
    /// A change-feed client that reads nothing for this long while its buffer is full is sent
    /// an `end` event and disconnected (it can resume with Last-Event-ID).
    #[arg(long, env = "INVENTORY_FEED_SLOW_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub feed_slow_after: std::time::Duration,
    /// Most change feeds open at once; the next client is answered 503 with Retry-After.
    #[arg(long, env = "INVENTORY_FEED_MAX_CLIENTS", default_value_t = inventory_query_api::FeedSettings::DEFAULT_MAX_CLIENTS as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub feed_max_clients: u64,
    /// Bytes of changes queued per change-feed client (a client whose queue stays full for
    /// INVENTORY_FEED_SLOW_AFTER is disconnected).
    #[arg(long, env = "INVENTORY_FEED_BUFFER_BYTES", default_value_t = inventory_query_api::FeedSettings::DEFAULT_BUFFER_BYTES as u64, value_parser = clap::value_parser!(u64).range(4096..=67_108_864))]
    pub feed_buffer_bytes: u64,
    /// Most events the projector applies in one transaction while catching up (DuckDB holds
    /// about 1.3 KB per event of it in memory; smaller batches commit, and show progress, sooner).
    #[arg(long, env = "INVENTORY_PROJECTOR_BATCH", default_value_t = 245_760, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub projector_batch: u64,
    /// Most bytes of events (payloads) the projector applies in one transaction, in MiB: the
    /// writer holds the newest document of every asset the open transaction changed, so large
    /// events end a batch before INVENTORY_PROJECTOR_BATCH does.
    #[arg(long, env = "INVENTORY_PROJECTOR_BATCH_MIB", default_value_t = inventory_projector::DEFAULT_BATCH_MAX_MIB, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub projector_batch_mib: u64,
    /// Most memory DuckDB keeps for the read model, in MiB (cached blocks and the transaction in
    /// progress; beyond it DuckDB evicts or spills to disk). The API's own read model in memory
    /// comes on top.
    #[arg(long, env = "INVENTORY_DUCKDB_MEMORY_MIB", default_value_t = inventory_projector::store::DEFAULT_MEMORY_MIB, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub duckdb_memory_mib: u64,
    /// Largest request body in bytes: a larger one is answered 413 from its Content-Length or as
    /// soon as it passes the limit, without being buffered.
    #[arg(long, env = "INVENTORY_MAX_BODY_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub max_body_bytes: u64,
    /// Longest wait for a request's headers; then the connection is closed.
    #[arg(long, env = "INVENTORY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// A connection on which nothing moves for this long is closed (keep it above
    /// INVENTORY_FEED_HEARTBEAT and INVENTORY_REQUEST_TIMEOUT).
    #[arg(long, env = "INVENTORY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Longest time to receive a request and produce its response's headers: 408 while the
    /// body is still arriving, else 504 (a change feed's stream is not bounded by it).
    #[arg(long, env = "INVENTORY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Most connections served at once; further ones wait in the kernel's listen backlog.
    #[arg(long, env = "INVENTORY_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Most reads of the read model running at once off the executor (history, changes, diffs,
    /// past views, filtered listings); one that waited INVENTORY_READ_WAIT gets 503 + Retry-After.
    #[arg(long, env = "INVENTORY_MAX_READS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_reads: u64,
    /// Longest wait of a read for its turn under INVENTORY_MAX_READS ("0": none).
    #[arg(long, env = "INVENTORY_READ_WAIT", default_value = "1s", value_parser = parse_duration_or_zero)]
    pub read_wait: std::time::Duration,
    /// /readyz says not ready when the projector applied nothing for this long while the stream
    /// holds newer events, or has not reached the stream for this long ("0": never).
    #[arg(long, env = "INVENTORY_READY_STALL_AFTER", default_value = "60s", value_parser = parse_duration_or_zero)]
    pub ready_stall_after: std::time::Duration,
    /// /readyz says not ready while the stream holds more than this many events not yet
    /// applied (0: no bound).
    #[arg(long, env = "INVENTORY_READY_MAX_LAG", default_value_t = 100_000)]
    pub ready_max_lag: u64,
    /// Verifier key of the stream's signed checkpoints (NAME+KEYID+KEY, or a file holding it, as
    /// written by `inventory keygen`), repeatable or comma separated: the API checks the newest
    /// checkpoint in the background (GET /api/v1/integrity, the console). None: nothing is
    /// verified. `inventory up` adds the key it signs with.
    #[arg(
        long,
        value_name = "PUB",
        env = "INVENTORY_VERIFIER_KEY",
        value_delimiter = ','
    )]
    pub verifier_key: Vec<String>,
    /// Interval between two looks for a newer signed checkpoint to verify.
    #[arg(long, env = "INVENTORY_INTEGRITY_EVERY", default_value = "30s", value_parser = parse_duration)]
    pub integrity_every: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Where NATS (when started here), Prometheus and the API keep their data.
    #[arg(long, env = "INVENTORY_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Address of the Prometheus started here (it scrapes the API).
    #[arg(
        long,
        env = "INVENTORY_UP_PROMETHEUS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub prometheus_listen: SocketAddr,
    /// The declared-assets file the file collector reads (as `inventory collect file`).
    #[command(flatten)]
    pub file: inventory_producers::sources::FileConfig,
    /// How often the local collectors sweep.
    #[arg(long, env = "INVENTORY_UP_EVERY", default_value = "1m", value_parser = parse_duration)]
    pub every: std::time::Duration,
    /// How often `up` signs a checkpoint of the stream (see `inventory checkpoint`).
    #[arg(long, env = "INVENTORY_CHECKPOINT_EVERY", default_value = "5m", value_parser = parse_duration)]
    pub checkpoint_every: std::time::Duration,
    /// Signer key of those checkpoints (default: DATA_DIR/checkpoint-signer.key, generated on
    /// first start with its verifier key beside it).
    #[arg(long, env = "INVENTORY_SIGNING_KEY_FILE", value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key name, written in every signature line; by convention the checkpoints' origin.
    #[arg(long, default_value = "asset-inventory/INVENTORY", value_parser = parse_key_name)]
    pub name: String,
    /// Directory to write checkpoint-signer.key (secret, mode 0600) and
    /// checkpoint-verifier.pub into. An existing signer key is never replaced.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// File holding the signer key (one line PRIVATE+KEY+..., from `inventory keygen`), e.g. a
    /// mounted Kubernetes Secret. Its content is never logged or echoed.
    #[arg(long, env = "INVENTORY_SIGNING_KEY_FILE", value_name = "FILE")]
    pub signing_key_file: PathBuf,
    /// The log's identity, the first line of every checkpoint.
    #[arg(long, env = "INVENTORY_CHECKPOINT_ORIGIN", default_value = "asset-inventory/INVENTORY", value_parser = parse_key_name)]
    pub origin: String,
    /// Also write the signed checkpoint (a C2SP signed note) to FILE, for an auditor to keep
    /// outside NATS.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    /// Stream sequence of the message to prove.
    #[arg(value_name = "SEQ", required_unless_present = "consistency_from", value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: Option<u64>,
    /// Prove against this signed checkpoint (from `inventory checkpoint --out`) instead of the
    /// newest one on INVENTORY_EVIDENCE.
    #[arg(long, value_name = "FILE")]
    pub checkpoint_file: Option<PathBuf>,
    /// Instead of an inclusion proof: prove that the checkpoint extends this older signed
    /// checkpoint (a consistency proof).
    #[arg(long, value_name = "OLD_FILE", conflicts_with = "seq")]
    pub consistency_from: Option<PathBuf>,
    /// Write the proof to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyProofArgs {
    /// Verifier key of the checkpoints (NAME+KEYID+KEY, or a file holding it). Repeatable or
    /// comma separated.
    #[arg(
        long,
        value_name = "PUB",
        env = "INVENTORY_VERIFIER_KEY",
        value_delimiter = ',',
        required = true
    )]
    pub key: Vec<String>,
    /// The proof, as written by `inventory prove`.
    #[arg(value_name = "PROOF_FILE")]
    pub proof_file: PathBuf,
}

fn parse_key_name(s: &str) -> Result<String, String> {
    if inventory_evidence::note::valid_key_name(s) {
        Ok(s.to_owned())
    } else {
        Err("must be non-empty, without spaces or '+' (e.g. asset-inventory/INVENTORY)".into())
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 30s, 15m, 1h)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    parse_duration(s)
}

/// A [`Point`] as the API takes it; the CLI's points name an event, so not `seq:0`.
fn parse_point(s: &str) -> Result<Point, String> {
    match s.parse::<Point>() {
        Ok(Point::Seq(0)) => Err("seq:0 names no event: sequences start at 1".into()),
        r => r.map_err(|e| e.to_string()),
    }
}

fn parse_anchor(s: &str) -> Result<(u64, String), String> {
    let (seq, hash) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not SEQ:CHAINHASH"))?;
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{seq:?} is not a stream sequence"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a chain hash (64 hex digits)"));
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

fn parse_word(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("must be 1-64 characters of [a-z0-9_-]".into())
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".into())
    }
}

/// Parses the command line; a secret given on it is refused (see [`secret_on_command_line`]).
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os())
}

/// [`parse`] of these arguments (the first is the program's name).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    if let Some((flag, env)) = secret_on_command_line(&cmd, &matches) {
        return Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "{flag} takes a secret, which the command line would show to every user of the \
                 machine (`ps`, /proc/<pid>/cmdline): set {env} instead"
            ),
        ));
    }
    Cli::from_arg_matches(&matches)
}

/// The first secret given on the command line, as (flag, environment variable). A secret is an
/// argument whose environment value is hidden from `--help` (`hide_env_values`: passwords,
/// tokens, client secrets): one attribute marks it, and it is accepted from the environment only.
pub fn secret_on_command_line(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
) -> Option<(String, String)> {
    use clap::parser::ValueSource;
    for arg in cmd.get_arguments() {
        if !arg.is_hide_env_values_set() {
            continue;
        }
        let id = arg.get_id().as_str();
        let given = matches.ids().any(|i| {
            i.as_str() == id && matches.value_source(id) == Some(ValueSource::CommandLine)
        });
        if given {
            let flag = arg
                .get_long()
                .map_or_else(|| id.to_owned(), |l| format!("--{l}"));
            let env = arg
                .get_env()
                .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
            return Some((flag, env));
        }
    }
    let (name, sub) = matches.subcommand()?;
    secret_on_command_line(cmd.find_subcommand(name)?, sub)
}

/// Turns a clap error into one line that names the setting, including its environment variable.
pub fn one_line_error(err: &clap::Error, args: &[String]) -> String {
    use clap::error::{ContextKind, ContextValue};
    let full = err.to_string();
    let mut lines = full.lines().filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    if let Some(ContextValue::Strings(missing)) = err.get(ContextKind::InvalidArg) {
        // "the following required arguments were not provided:" and the list, on one line.
        return format!(
            "error: {} {}",
            first.trim_end_matches(':'),
            missing.join(", ")
        );
    }
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return format!("error: {first}"),
    };
    let long = arg
        .trim_start_matches("--")
        .split([' ', '=', '<'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let reason = full
        .lines()
        .skip_while(|l| !l.contains(&arg))
        .nth(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more"))
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    match env_of(&long, args) {
        Some(env) => format!("error: {first} (env {env}){reason}"),
        None => format!("error: {first}{reason}"),
    }
}

/// The environment variable of the option `--long` as the invoked subcommand defines it: the
/// subcommands named in `args` are followed from the root, and the deepest one that has the
/// option (its own, or a global of an ancestor) answers.
fn env_of(long: &str, args: &[String]) -> Option<String> {
    let env = |cmd: &clap::Command| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    };
    let mut path = vec![<Cli as clap::CommandFactory>::command()];
    for a in args.iter().skip(1) {
        let next = path
            .last()
            .and_then(|c| c.find_subcommand(a.as_str()))
            .cloned();
        if let Some(sub) = next {
            path.push(sub);
        }
    }
    path.iter().rev().find_map(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_limits_default_to_the_documented_values_and_name_their_variable() {
        let cli = Cli::try_parse_from(["inventory", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let limits = inventory_query_api::Limits::default();
        assert_eq!(args.max_body_bytes, limits.max_body_bytes);
        assert_eq!(args.header_timeout, limits.header_timeout);
        assert_eq!(args.idle_timeout, limits.idle_timeout);
        assert_eq!(args.request_timeout, limits.request_timeout);
        assert_eq!(args.max_connections as usize, limits.max_connections);
        assert_eq!(args.max_reads as usize, limits.max_reads);
        assert_eq!(args.read_wait, limits.read_wait);
        let ready = inventory_query_api::ReadyBounds::default();
        assert_eq!(args.ready_stall_after, ready.stall_after);
        assert_eq!(args.ready_max_lag, ready.max_lag);
        let args = ["inventory", "serve", "--max-body-bytes", "12"];
        let err = Cli::try_parse_from(args).unwrap_err();
        let line = one_line_error(&err, &args.map(String::from));
        assert!(line.contains("INVENTORY_MAX_BODY_BYTES"), "{line}");
        let args = ["inventory", "serve", "--ready-stall-after", "0"];
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve");
        };
        assert!(a.ready_stall_after.is_zero());
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_naming_its_variable() {
        let cases: [(&[&str], &str); 9] = [
            (
                &["inventory", "--nats-password", "s3cr3t", "serve"],
                "NATS_PASSWORD",
            ),
            (
                &["inventory", "serve", "--nats-password=s3cr3t"],
                "NATS_PASSWORD",
            ),
            (
                &["inventory", "project", "--nats-token", "s3cr3t"],
                "NATS_TOKEN",
            ),
            (
                &["inventory", "serve", "--api-tokens", "viewer:s3cr3t"],
                "INVENTORY_API_TOKENS",
            ),
            (
                &["inventory", "up", "--api-tokens", "viewer:s3cr3t"],
                "INVENTORY_API_TOKENS",
            ),
            (
                &[
                    "inventory",
                    "collect",
                    "grafana",
                    "--url",
                    "http://127.0.0.1:1",
                    "--token",
                    "s3cr3t",
                ],
                "GRAFANA_TOKEN",
            ),
            (
                &["inventory", "collect", "azure", "--client-secret", "s3cr3t"],
                "AZURE_CLIENT_SECRET",
            ),
            (
                &["inventory", "collect", "azure", "--access-token", "s3cr3t"],
                "AZURE_ACCESS_TOKEN",
            ),
            (
                &["inventory", "collect", "gcp", "--access-token", "s3cr3t"],
                "GCP_ACCESS_TOKEN",
            ),
        ];
        for (args, env) in cases {
            let argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            let err = parse_from(&argv)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            let line = one_line_error(&err, &argv);
            assert!(!line.contains('\n'), "{line}");
            assert!(
                line.contains(&format!("set {env} instead")),
                "{args:?}: {line}"
            );
            assert!(
                !line.contains("s3cr3t"),
                "the secret is not repeated: {line}"
            );
        }
        // The same commands without the secret are accepted, and so is every other flag.
        for args in [
            &["inventory", "serve"][..],
            &[
                "inventory",
                "--nats-user",
                "u",
                "serve",
                "--listen",
                "127.0.0.1:1",
            ],
            &["inventory", "collect", "azure"],
            &[
                "inventory",
                "collect",
                "grafana",
                "--url",
                "http://127.0.0.1:1",
            ],
        ] {
            assert!(parse_from(args).is_ok(), "{args:?}");
        }
        // Every secret has a variable to take it from.
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments().filter(|a| a.is_hide_env_values_set()) {
                assert!(arg.get_env().is_some(), "{} has no variable", arg.get_id());
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&<Cli as clap::CommandFactory>::command());
    }

    #[test]
    fn bad_settings_give_one_line_naming_the_variable() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let args = argv(&["inventory", "serve", "--listen", "nowhere"]);
        let err = Cli::try_parse_from(&args).unwrap_err();
        let line = one_line_error(&err, &args);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--listen"), "{line}");
        assert!(line.contains("INVENTORY_LISTEN"), "{line}");
        let args = argv(&["inventory", "collect", "--max-delete-share", "2", "file"]);
        let err = Cli::try_parse_from(&args).unwrap_err();
        let line = one_line_error(&err, &args);
        assert!(line.contains("INVENTORY_MAX_DELETE_SHARE"), "{line}");
        assert!(line.contains("between 0 and 1"), "{line}");
        // The same long name in two subcommands: the invoked one's variable (or none).
        let error_line = |a: &[&str]| {
            let args = argv(a);
            one_line_error(&Cli::try_parse_from(&args).unwrap_err(), &args)
        };
        let line = error_line(&[
            "inventory",
            "keygen",
            "--name",
            "bad name",
            "--out-dir",
            "k",
        ]);
        assert!(line.contains("--name"), "{line}");
        assert!(!line.contains("PROM_NAME"), "{line}");
        // The collectors' own timeouts: each subcommand names its own variable.
        for (source, var, other) in [
            ("prometheus", "PROM_TIMEOUT_SECS", "GRAFANA_TIMEOUT_SECS"),
            ("grafana", "GRAFANA_TIMEOUT_SECS", "PROM_TIMEOUT_SECS"),
        ] {
            let line = error_line(&[
                "inventory",
                "collect",
                source,
                "--url",
                "http://127.0.0.1:9",
                "--timeout-secs",
                "0",
            ]);
            assert!(line.contains(var) && !line.contains(other), "{line}");
        }
        // A missing required argument is named.
        let args = argv(&["inventory", "replay", "--db", "x"]);
        let err = Cli::try_parse_from(&args).unwrap_err();
        let line = one_line_error(&err, &args);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--until"), "{line}");
    }

    #[test]
    fn the_collectors_timeouts_are_settings() {
        use inventory_producers::sources::{GrafanaConfig, PrometheusConfig};
        let timeout = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Collect(CollectArgs {
                source:
                    SourceArgs::Prometheus(PrometheusConfig { timeout, .. })
                    | SourceArgs::Grafana(GrafanaConfig { timeout, .. }),
                ..
            }) => timeout,
            _ => panic!("not a prometheus or grafana collector"),
        };
        let url = "http://127.0.0.1:9";
        for source in ["prometheus", "grafana"] {
            let base = ["inventory", "collect", source, "--url", url];
            // The documented default (README, docs/collectors.md).
            assert_eq!(timeout(&base), std::time::Duration::from_secs(10));
            assert_eq!(
                timeout(&[&base[..], &["--timeout-secs", "3"]].concat()),
                std::time::Duration::from_secs(3)
            );
        }
    }

    #[test]
    fn every_collector_setting_has_its_documented_variable() {
        let cmd = <Cli as clap::CommandFactory>::command();
        let collect = cmd.find_subcommand("collect").unwrap();
        let env_of = |source: &str, long: &str| {
            collect
                .find_subcommand(source)
                .unwrap()
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        for (source, long, var) in [
            ("prometheus", "timeout-secs", "PROM_TIMEOUT_SECS"),
            ("grafana", "timeout-secs", "GRAFANA_TIMEOUT_SECS"),
            ("aws", "timeout-secs", "AWS_ORG_TIMEOUT_SECS"),
            ("gcp", "timeout-secs", "GCP_TIMEOUT_SECS"),
            ("azure", "timeout-secs", "AZURE_TIMEOUT_SECS"),
            ("aws", "deadline-secs", "AWS_ORG_DEADLINE_SECS"),
            ("gcp", "deadline-secs", "GCP_DEADLINE_SECS"),
            ("azure", "retry-deadline-secs", "AZURE_RETRY_DEADLINE_SECS"),
            ("file", "file", "INVENTORY_ASSETS_FILE"),
        ] {
            assert_eq!(
                env_of(source, long).as_deref(),
                Some(var),
                "{source} --{long}"
            );
        }
        // `up` reads the declared-assets file with the file collector's own setting.
        let up = cmd.find_subcommand("up").unwrap();
        let file = up
            .get_arguments()
            .find(|a| a.get_long() == Some("file"))
            .unwrap();
        assert_eq!(
            file.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some("INVENTORY_ASSETS_FILE".to_owned())
        );
    }

    #[test]
    fn points_are_a_sequence_or_a_time() {
        assert_eq!(parse_point("seq:42"), Ok(Point::Seq(42)));
        assert!(parse_point("42").unwrap_err().contains("seq:42"));
        assert!(matches!(
            parse_point("2026-03-01T00:00:00Z"),
            Ok(Point::Time(t)) if t.to_rfc3339() == "2026-03-01T00:00:00+00:00"
        ));
        assert!(matches!(
            parse_point("2026-03-01T01:00:00+01:00"),
            Ok(Point::Time(t)) if t.to_rfc3339() == "2026-03-01T00:00:00+00:00"
        ));
        assert!(parse_point("seq:0").is_err());
        let args: Vec<String> = ["inventory", "replay", "--until", "yesterday", "--db", "x"]
            .map(str::to_owned)
            .into();
        let err = Cli::try_parse_from(&args).unwrap_err();
        let line = one_line_error(&err, &args);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--until"), "{line}");
        assert!(line.contains("neither seq:N"), "{line}");
    }

    #[test]
    fn cli_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
