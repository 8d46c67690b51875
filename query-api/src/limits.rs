//! Bounds on what clients may make the server hold, and on when `/readyz` stops vouching for the
//! read model. Each is a setting (`inventory serve --help`, README's configuration table).

use std::time::Duration;

/// Bounds on connections, requests and reads (see README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (`INVENTORY_MAX_BODY_BYTES`): refused with 413 from its
    /// `Content-Length`, or as soon as a streamed body passes it.
    pub max_body_bytes: u64,
    /// Longest wait for a request's headers (`INVENTORY_HEADER_TIMEOUT`), from the connection's
    /// start for its first request and from the first byte of each later one (a kept-alive
    /// connection rests under the idle timeout); then the connection is closed.
    pub header_timeout: Duration,
    /// A connection on which nothing is read or written for this long is closed
    /// (`INVENTORY_IDLE_TIMEOUT`; more than the SSE heartbeat).
    pub idle_timeout: Duration,
    /// Longest time to receive a request's body and produce its response's headers
    /// (`INVENTORY_REQUEST_TIMEOUT`): 408 while the body is still arriving, else 504. A change
    /// feed's stream itself is not bounded by it.
    pub request_timeout: Duration,
    /// Most connections served at once (`INVENTORY_MAX_CONNECTIONS`); further ones wait in the
    /// kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// Most reads of the read model running at once off the executor (`INVENTORY_MAX_READS`).
    pub max_reads: usize,
    /// Longest wait of a read for its turn (`INVENTORY_READ_WAIT`); then 503 with `Retry-After`.
    pub read_wait: Duration,
}

impl Limits {
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    pub const DEFAULT_MAX_READS: usize = 8;
    pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(1);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_reads: Self::DEFAULT_MAX_READS,
            read_wait: Self::DEFAULT_READ_WAIT,
        }
    }
}

/// When `/readyz` says not ready besides catching up at start, a failure, or a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyBounds {
    /// Not ready when the projector has applied nothing for this long while the stream holds
    /// newer events, or has not reached the stream for this long (`INVENTORY_READY_STALL_AFTER`;
    /// zero: never).
    pub stall_after: Duration,
    /// Not ready while the stream holds more than this many events not yet applied
    /// (`INVENTORY_READY_MAX_LAG`; zero: no bound).
    pub max_lag: u64,
}

impl ReadyBounds {
    pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_LAG: u64 = 100_000;
}

impl Default for ReadyBounds {
    fn default() -> Self {
        Self {
            stall_after: Self::DEFAULT_STALL_AFTER,
            max_lag: Self::DEFAULT_MAX_LAG,
        }
    }
}
