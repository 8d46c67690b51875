//! NATS JetStream plumbing shared by the collectors, the projector and the API: connecting,
//! ensuring the `INVENTORY` stream (DESIGN §4), conditional publishing and the two reads every
//! part needs (newest event per subject, ordered replay from a sequence), and the one retry
//! machinery ([`retry`]) every publish rides a stream leader change with ([`publish_settled`]).

pub mod retry;
mod settle;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{HeaderMap, ServerAddr};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use inventory_schemas::{OutgoingEvent, CONTENT_TYPE, STREAM_NAME, STREAM_SUBJECTS};
use tracing::{debug, info, warn};

pub use retry::{Backoff, RetryPolicy, DEFAULT_NATS_RETRY_BUDGET};
pub use settle::{publish_settled, read_retrying, resolve, Settled};

/// How to reach NATS. Secrets are never logged.
#[derive(Clone, Default)]
pub struct NatsConfig {
    /// Server URL(s), comma separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// A `.creds` file (JWT + NKey seed).
    pub creds_file: Option<PathBuf>,
    /// User name (with `password`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Token authentication.
    pub token: Option<String>,
    /// Client name shown in server monitoring.
    pub name: String,
    /// How long a write or read that meets a leader change, a lost connection or an
    /// unreachable stream is retried (`NATS_RETRY_SECS`, default
    /// [`DEFAULT_NATS_RETRY_BUDGET`]).
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("creds_file", &self.creds_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("retry", &self.retry)
            .finish()
    }
}

/// How the stream is created when it does not exist yet.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// 1 in development, 3 in production.
    pub replicas: usize,
    /// Zero: keep forever.
    pub max_age: Duration,
    /// JetStream's de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("JetStream stream {STREAM_NAME}: {0}")]
    Stream(String),
    #[error("JetStream stream {STREAM_NAME} does not exist, and this NATS identity could not create it within {}s ({reason}): only the API's identity creates it (infra/nats/auth.conf); start `inventory serve` first (docs/runbook.md, \"NATS users\")", waited.as_secs())]
    StreamMissing { waited: Duration, reason: String },
    #[error("publish to {subject} refused: the subject moved past sequence {expected} (another writer was first)")]
    Conflict { subject: String, expected: u64 },
    /// Not stored: nothing took the publish (no responders or no stream for the subject while
    /// a new stream leader is elected, a refused connection).
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    /// Perhaps stored: the publish was sent but its acknowledgement never came (a timeout, a
    /// connection closed in between).
    #[error("publish to {subject} unconfirmed: {reason}")]
    Unconfirmed { subject: String, reason: String },
    /// Refused for a reason retrying cannot change (a message larger than the server takes).
    #[error("publish to {subject} refused: {reason}")]
    Refused { subject: String, reason: String },
    #[error("reading {filter} failed: {reason}")]
    Read { filter: String, reason: String },
}

/// How a caller should react to a [`BusError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or credentials: retrying will not help.
    Config,
    /// A conditional write lost a race: re-read and re-diff.
    Conflict,
    /// Network or server trouble, nothing written (a leader election, a lost connection): retry
    /// with backoff.
    Transient,
    /// A write whose outcome is unknown (sent, never acknowledged): read the subject's last
    /// message back to learn whether it was stored before retrying it ([`publish_settled`]).
    Unknown,
}

impl BusError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } | Self::Refused { .. } => ErrorKind::Config,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Unconfirmed { .. } => ErrorKind::Unknown,
            Self::Stream(_)
            | Self::StreamMissing { .. }
            | Self::Publish { .. }
            | Self::Read { .. } => ErrorKind::Transient,
        }
    }
}

/// Connects to NATS. Fails at once (no silent retry loop) when the first connection is refused,
/// so a bad `NATS_URL` is a one-line error at start; reconnects automatically afterwards.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, BusError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(if config.name.is_empty() {
            "asset-inventory"
        } else {
            &config.name
        })
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => warn!("disconnected from NATS"),
                async_nats::Event::Connected => info!("connected to NATS"),
                // A refused publish or request is only reported this way (the request itself
                // times out): the subject the identity may not use, infra/nats/auth.conf.
                async_nats::Event::ServerError(e) => warn!(error = %e, "NATS server error"),
                other => debug!(event = %other, "NATS client event"),
            }
        });
    let servers = server_addrs(&config.url)?;
    let err = |reason: String| BusError::Connect {
        url: redact_url(&config.url),
        reason,
    };
    if let Some(path) = &config.creds_file {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| err(format!("NATS_CREDS {}: {e}", path.display())))?;
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        opts = opts.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &config.token {
        opts = opts.token(token.clone());
    }
    opts.connect(servers).await.map_err(|e| err(e.to_string()))
}

/// The servers of a `NATS_URL`: one URL, or a comma-separated list of a cluster's servers
/// (`nats://a:4222,nats://b:4222`), any of which may be down when connecting. The client learns
/// the rest of the cluster from the first server it reaches.
pub fn server_addrs(url: &str) -> Result<Vec<ServerAddr>, BusError> {
    let invalid = |reason: String| BusError::Connect {
        url: redact_url(url),
        reason,
    };
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    if parts.iter().all(|p| p.is_empty()) {
        return Err(invalid("no server URL given".to_owned()));
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            if part.is_empty() {
                return Err(invalid(format!("server {} of the list is empty", i + 1)));
            }
            part.parse::<ServerAddr>().map_err(|e| {
                invalid(format!(
                    "server {} of the list, {}: {e}",
                    i + 1,
                    redact_url(part)
                ))
            })
        })
        .collect()
}

/// A `NATS_URL` (or list) fit for messages and logs: any user and password in it are replaced.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|part| match part.rsplit_once('@') {
            Some((before, host)) => match before.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://***@{host}"),
                None => format!("***@{host}"),
            },
            None => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `INVENTORY` stream's configuration (DESIGN §4): every `inventory.>` subject, file storage,
/// no deletes, no purges, no rollups.
pub fn stream_config(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: STREAM_NAME.to_owned(),
        description: Some("asset-inventory: append-only source of truth".to_owned()),
        subjects: vec![STREAM_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        max_age: settings.max_age,
        num_replicas: settings.replicas,
        // The server refuses a duplicate window longer than the retention.
        duplicate_window: if settings.max_age.is_zero() {
            settings.duplicate_window
        } else {
            settings.duplicate_window.min(settings.max_age)
        },
        allow_direct: true,
        ..Default::default()
    }
}

/// How long [`ensure_stream`] waits for a stream that does not exist and that this identity may
/// not create (a collector started before the API: infra/nats/auth.conf lets only the API's
/// identities create `INVENTORY`).
pub const STREAM_WAIT: Duration = Duration::from_secs(120);

/// Returns the stream, creating it when it does not exist. An existing stream is used as it is;
/// a mismatch in the properties the contract relies on is logged, not silently changed.
///
/// An identity that may not create it (the server refuses the request, which then times out)
/// waits for it, up to [`STREAM_WAIT`], saying so every attempt; then fails with
/// [`BusError::StreamMissing`]. Any other error of the server ends it at once.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, BusError> {
    use async_nats::jetstream::context::CreateStreamErrorKind;
    let wanted = stream_config(settings);
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut stream = loop {
        match js.get_stream(STREAM_NAME).await {
            Ok(stream) => break stream,
            Err(e) if stream_not_found(&e) => {}
            Err(e) => return Err(BusError::Stream(e.to_string())),
        }
        match js.create_stream(wanted.clone()).await {
            Ok(stream) => {
                info!(stream = STREAM_NAME, "created the stream");
                break stream;
            }
            // Created by another process in the meantime, perhaps differently: read it.
            Err(e) if stream_exists(&e) => {}
            Err(e) if e.kind() == CreateStreamErrorKind::TimedOut => {
                let waited = started.elapsed();
                if waited >= STREAM_WAIT {
                    return Err(BusError::StreamMissing {
                        waited,
                        reason: e.to_string(),
                    });
                }
                warn!(
                    stream = STREAM_NAME,
                    error = %e,
                    waited_s = waited.as_secs(),
                    wait_limit_s = STREAM_WAIT.as_secs(),
                    "the stream does not exist and creating it was not answered (this identity may not create it: only the API's may); waiting for it"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(BusError::Stream(e.to_string())),
        }
    };
    let info = stream
        .info()
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?;
    let have = &info.config;
    if have.subjects != wanted.subjects || !have.deny_delete || !have.deny_purge {
        warn!(
            subjects = ?have.subjects,
            deny_delete = have.deny_delete,
            deny_purge = have.deny_purge,
            "existing stream differs from the contract (subjects inventory.>, deny delete and purge)"
        );
    }
    Ok(stream)
}

/// Publishes one event with `Nats-Msg-Id` and, for asset events, `Nats-Expected-Last-Subject-Sequence`,
/// and waits for the stream's acknowledgement. Returns the stream sequence.
pub async fn publish(js: &jetstream::Context, event: &OutgoingEvent) -> Result<u64, BusError> {
    let ack = publish_start(js, event).await?;
    finish(ack, event).await
}

/// Starts a publish and returns its pending acknowledgement, so callers can pipeline many.
pub async fn publish_start(
    js: &jetstream::Context,
    event: &OutgoingEvent,
) -> Result<jetstream::context::PublishAckFuture, BusError> {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", CONTENT_TYPE);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
    if let Some(prev) = event.prevseq {
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            prev.to_string().as_str(),
        );
    }
    let msg = jetstream::message::PublishMessage::build()
        .headers(headers)
        .payload(Bytes::from(event.payload.clone()));
    js.send_publish(event.subject.clone(), msg)
        .await
        .map_err(|e| publish_error(e, event))
}

/// Waits for a pipelined publish's acknowledgement.
pub async fn finish(
    ack: jetstream::context::PublishAckFuture,
    event: &OutgoingEvent,
) -> Result<u64, BusError> {
    let ack = ack.await.map_err(|e| publish_error(e, event))?;
    if ack.duplicate {
        debug!(subject = %event.subject, id = %event.id, seq = ack.sequence, "duplicate publish dropped by the stream");
    }
    Ok(ack.sequence)
}

/// The one place a publish failure is classified (see [`ErrorKind`]).
fn publish_error(e: jetstream::context::PublishError, event: &OutgoingEvent) -> BusError {
    use jetstream::context::PublishErrorKind;
    let subject = event.subject.clone();
    let reason = e.to_string();
    match e.kind() {
        PublishErrorKind::WrongLastSequence => BusError::Conflict {
            subject,
            expected: event.prevseq.unwrap_or_default(),
        },
        // "No responders" / no stream for the subject: no stream leader took it (an election).
        PublishErrorKind::StreamNotFound => BusError::Publish { subject, reason },
        PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::WrongLastMessageId => {
            BusError::Refused { subject, reason }
        }
        // Sent, then a timeout or a closed connection (or an error we cannot place): it may
        // have been stored.
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::Other => BusError::Unconfirmed { subject, reason },
    }
}

/// A message read from the stream.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// NATS subject.
    pub subject: String,
    /// When JetStream recorded it (UTC nanoseconds since the epoch).
    pub recorded_at_nanos: i128,
    pub payload: Bytes,
}

impl StoredMessage {
    /// When JetStream recorded it.
    pub fn recorded_at(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_nanos(
            i64::try_from(self.recorded_at_nanos).unwrap_or(i64::MAX),
        )
    }

    /// Decodes it as an event *of the subject it was stored on*: the trust rule
    /// ([`inventory_schemas::trust`]), which every reader applies.
    pub fn decode(
        &self,
    ) -> Result<inventory_schemas::InventoryEvent, inventory_schemas::Rejection> {
        inventory_schemas::decode_stored(&self.subject, self.recorded_at(), &self.payload)
    }

    /// The message as stored, with its JetStream metadata (pending count, consumer name).
    fn from_message<'m>(
        msg: &'m jetstream::Message,
        filter: &str,
    ) -> Result<(Self, jetstream::message::Info<'m>), BusError> {
        let info = msg.info().map_err(|e| BusError::Read {
            filter: filter.to_owned(),
            reason: format!("message without JetStream metadata: {e}"),
        })?;
        Ok((
            Self {
                seq: info.stream_sequence,
                subject: msg.subject.as_str().to_owned(),
                recorded_at_nanos: info.published.unix_timestamp_nanos(),
                payload: msg.payload.clone(),
            },
            info,
        ))
    }
}

/// The server answered that the stream does not exist.
fn stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The server answered that a stream of that name exists (with another configuration).
fn stream_exists(e: &jetstream::context::CreateStreamError) -> bool {
    matches!(e.kind(), jetstream::context::CreateStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST)
}

/// A new, unguessable name for an ordered consumer. Named with one filter subject, the client
/// creates it through `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` (unnamed: the bare
/// `$JS.API.CONSUMER.CREATE.<stream>`, whose body may name any filter), the form NATS permissions
/// can restrict to an identity's own subjects (infra/nats/auth.conf); the server refuses a body
/// whose filter differs from the subject's. Fetching (`CONSUMER.MSG.NEXT.<stream>.<name>`) cannot
/// be restricted by name, so the name must not be guessable by another identity.
fn consumer_name() -> String {
    format!("ordered-{}", uuid::Uuid::new_v4().simple())
}

/// Longest wait for one attempt at creating an ordered consumer (healthy: milliseconds).
const CONSUMER_CREATE_WAIT: Duration = Duration::from_secs(3);

async fn ordered(
    stream: &stream::Stream,
    filter: &str,
    deliver_policy: consumer::DeliverPolicy,
) -> Result<(consumer::pull::Ordered, u64), BusError> {
    let read_err = |reason: String| BusError::Read {
        filter: filter.to_owned(),
        reason,
    };
    // While a peer of the stream is down, nats-server 2.9 leaves many consumer creations
    // unanswered for as long as the peer stays down, while others succeed (measured: about
    // 40 %): each attempt is given CONSUMER_CREATE_WAIT, and an unanswered one is retried
    // within the default NATS retry budget.
    let created = retry::retry(RetryPolicy::default().backoff(), |attempt| async move {
        let config = consumer::pull::OrderedConfig {
            name: Some(consumer_name()),
            filter_subject: filter.to_owned(),
            deliver_policy,
            ..Default::default()
        };
        let unanswered = |reason: String| {
            warn!(filter, attempt, error = %reason, "creating an ordered consumer was not answered; retrying");
            retry::Verdict::retry(reason)
        };
        match tokio::time::timeout(CONSUMER_CREATE_WAIT, stream.create_consumer(config)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => match e.kind() {
                stream::ConsumerErrorKind::TimedOut | stream::ConsumerErrorKind::Request => {
                    Err(unanswered(e.to_string()))
                }
                _ => Err(retry::Verdict::Fail(e.to_string())),
            },
            Err(_) => Err(unanswered("timed out".to_owned())),
        }
    })
    .await;
    let mut consumer: consumer::Consumer<consumer::pull::OrderedConfig> =
        created.map_err(|e| read_err(e.into_error()))?;
    let pending = consumer
        .info()
        .await
        .map_err(|e| read_err(e.to_string()))?
        .num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| read_err(e.to_string()))?;
    Ok((messages, pending))
}

/// The newest message of every subject matching `filter` (an ordered consumer delivering the last
/// message per subject), in stream order.
pub async fn last_per_subject(
    stream: &stream::Stream,
    filter: &str,
) -> Result<Vec<StoredMessage>, BusError> {
    let (mut messages, pending) =
        ordered(stream, filter, consumer::DeliverPolicy::LastPerSubject).await?;
    let mut out = Vec::with_capacity(usize::try_from(pending).unwrap_or(0));
    if pending == 0 {
        return Ok(out);
    }
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| BusError::Read {
            filter: filter.to_owned(),
            reason: e.to_string(),
        })?;
        let (stored, info) = StoredMessage::from_message(&msg, filter)?;
        out.push(stored);
        if info.pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Every message matching `filter` from stream sequence `from` (inclusive; 0 or 1: the start),
/// following the stream as it grows. Ends only with an error or when the caller drops it.
pub async fn follow(
    stream: &stream::Stream,
    filter: &str,
    from: u64,
) -> Result<impl Stream<Item = Result<StoredMessage, BusError>> + Send + 'static, BusError> {
    let policy = if from <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: from,
        }
    };
    let (messages, _) = ordered(stream, filter, policy).await?;
    let filter = filter.to_owned();
    Ok(messages
        .map_err({
            let filter = filter.clone();
            move |e| BusError::Read {
                filter: filter.clone(),
                reason: e.to_string(),
            }
        })
        .and_then(move |msg| {
            let r = StoredMessage::from_message(&msg, &filter).map(|(m, _)| m);
            futures::future::ready(r)
        }))
}

/// The stream's last sequence right now (0 when empty).
pub async fn last_sequence(stream: &mut stream::Stream) -> Result<u64, BusError> {
    stream
        .info()
        .await
        .map(|i| i.state.last_sequence)
        .map_err(|e| BusError::Stream(e.to_string()))
}

/// What identifies one incarnation of a stream, and the sequences it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    /// When the stream was created (JetStream's `created`): a stream deleted and created again
    /// under the same name has a new one.
    pub created: chrono::DateTime<chrono::Utc>,
    /// The first sequence still stored: above 1 once `max_age` expired older messages; the next
    /// sequence to be written when the stream holds none.
    pub first_seq: u64,
    /// The last sequence written (0 when nothing ever was).
    pub last_seq: u64,
}

/// The stream's creation time and sequence range right now.
pub async fn stream_state(stream: &mut stream::Stream) -> Result<StreamState, BusError> {
    let info = stream
        .info()
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?;
    Ok(StreamState {
        created: chrono::DateTime::from_timestamp_nanos(
            i64::try_from(info.created.unix_timestamp_nanos()).unwrap_or(i64::MAX),
        ),
        first_seq: info.state.first_sequence,
        last_seq: info.state.last_sequence,
    })
}

/// A message read by [`follow_marked`].
#[derive(Debug, Clone)]
pub struct Followed {
    pub message: StoredMessage,
    /// The first message delivered by this server-side consumer. The ordered consumer creates
    /// a new one, from the sequence after the last it delivered, at the start, after lost
    /// heartbeats, and when its stream was deleted — even if a stream of the same name was then
    /// created again. A reader bound to one stream checks the stream before using this message.
    pub new_consumer: bool,
}

/// Like [`follow`], marking the first message of every server-side consumer (see
/// [`Followed::new_consumer`]): the only sign, on the message path, that the ordered consumer
/// silently moved to a recreated stream.
pub async fn follow_marked(
    stream: &stream::Stream,
    filter: &str,
    from: u64,
) -> Result<impl Stream<Item = Result<Followed, BusError>> + Send + 'static, BusError> {
    let (messages, _) = ordered(stream, filter, Start::Sequence(from).policy()).await?;
    let filter = filter.to_owned();
    let mut consumer = String::new();
    Ok(messages.map(move |item| {
        let msg = item.map_err(|e| BusError::Read {
            filter: filter.clone(),
            reason: e.to_string(),
        })?;
        let (message, info) = StoredMessage::from_message(&msg, &filter)?;
        let new_consumer = info.consumer != consumer;
        if new_consumer {
            info.consumer.clone_into(&mut consumer);
        }
        Ok(Followed {
            message,
            new_consumer,
        })
    }))
}

/// Where an ordered read ([`follow_from`]) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only messages stored after the consumer is created.
    New,
    /// From this stream sequence (inclusive; 0 or 1: the start of the stream).
    Sequence(u64),
    /// From the first message JetStream recorded at or after this time.
    Time(std::time::SystemTime),
}

impl Start {
    fn policy(self) -> consumer::DeliverPolicy {
        match self {
            Self::New => consumer::DeliverPolicy::New,
            Self::Sequence(s) if s <= 1 => consumer::DeliverPolicy::All,
            Self::Sequence(s) => consumer::DeliverPolicy::ByStartSequence { start_sequence: s },
            Self::Time(t) => consumer::DeliverPolicy::ByStartTime {
                start_time: t.into(),
            },
        }
    }
}

/// Every message matching `filter` from `start`, following the stream as it grows (an ordered
/// consumer: no server-side state). Also returns how many matching messages were already stored
/// when the consumer was created, so a caller can stop at the stream's tip at start.
pub async fn follow_from(
    stream: &stream::Stream,
    filter: &str,
    start: Start,
) -> Result<
    (
        u64,
        impl Stream<Item = Result<StoredMessage, BusError>> + Send + 'static,
    ),
    BusError,
> {
    let (messages, pending) = ordered(stream, filter, start.policy()).await?;
    let filter = filter.to_owned();
    let messages = messages
        .map_err({
            let filter = filter.clone();
            move |e| BusError::Read {
                filter: filter.clone(),
                reason: e.to_string(),
            }
        })
        .and_then(move |msg| {
            let r = StoredMessage::from_message(&msg, &filter).map(|(m, _)| m);
            futures::future::ready(r)
        });
    Ok((pending, messages))
}

/// The first message JetStream recorded at or after `time` (`None`: nothing recorded since).
pub async fn first_recorded_at_or_after(
    stream: &stream::Stream,
    time: std::time::SystemTime,
) -> Result<Option<StoredMessage>, BusError> {
    let (pending, messages) = follow_from(stream, STREAM_SUBJECTS, Start::Time(time)).await?;
    if pending == 0 {
        return Ok(None);
    }
    let mut messages = Box::pin(messages);
    let first = messages.next().await.transpose()?;
    // nats-server 2.9 starts a by-time consumer at the stream's first message when nothing was
    // recorded at or after the time: a message older than asked for means "none".
    let wanted = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0);
    Ok(first.filter(|m| m.recorded_at_nanos >= wanted))
}

fn stored_from_direct(m: async_nats::jetstream::message::StreamMessage) -> StoredMessage {
    StoredMessage {
        seq: m.sequence,
        subject: m.subject.as_str().to_owned(),
        recorded_at_nanos: m.time.unix_timestamp_nanos(),
        payload: m.payload,
    }
}

fn direct_result(
    r: Result<async_nats::jetstream::message::StreamMessage, stream::DirectGetError>,
    what: String,
) -> Result<Option<StoredMessage>, BusError> {
    match r {
        Ok(m) => Ok(Some(stored_from_direct(m))),
        Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => Ok(None),
        Err(e) => Err(BusError::Read {
            filter: what,
            reason: e.to_string(),
        }),
    }
}

/// The newest message on `subject`, read from the stream leader (so a write just acknowledged is
/// seen), or `None` when the subject has none.
pub async fn last_on_subject(
    stream: &stream::Stream,
    subject: &str,
) -> Result<Option<StoredMessage>, BusError> {
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Ok(Some(stored_from_direct(m))),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(BusError::Read {
            filter: subject.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The newest message on `subject` as a replica has it (a direct get by subject,
/// `$JS.API.DIRECT.GET.INVENTORY.<subject>`: any replica answers, so it works during a leader
/// election; a replica may lag by the last few writes), or `None` when the subject has none.
pub async fn last_on_subject_direct(
    stream: &stream::Stream,
    subject: &str,
) -> Result<Option<StoredMessage>, BusError> {
    direct_result(
        stream.direct_get_last_for_subject(subject).await,
        subject.to_owned(),
    )
}

/// The message stored at sequence `seq` (a direct get; the stream allows them), or `None` when
/// there is none (never written, expired or removed).
pub async fn message_at(
    stream: &stream::Stream,
    seq: u64,
) -> Result<Option<StoredMessage>, BusError> {
    direct_result(stream.direct_get(seq).await, format!("sequence {seq}"))
}

/// The first message on `subject` at or after sequence `from` (a direct get), or `None`.
pub async fn next_on_subject(
    stream: &stream::Stream,
    subject: &str,
    from: u64,
) -> Result<Option<StoredMessage>, BusError> {
    direct_result(
        stream
            .direct_get_next_for_subject(subject, Some(from.max(1)))
            .await,
        format!("{subject} from sequence {from}"),
    )
}

#[cfg(test)]
mod tests;
