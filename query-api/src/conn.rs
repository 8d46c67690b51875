//! The HTTP server loop. Serves at most `INVENTORY_MAX_CONNECTIONS` connections at once: while
//! that many are open, nothing more is accepted and further connections wait in the kernel's
//! listen backlog (then time out or are refused there). Each connection is served by hyper
//! (HTTP/1.1, and HTTP/2 with prior knowledge). A request's headers must arrive within
//! `INVENTORY_HEADER_TIMEOUT`, counted from the connection's start for the first request and from
//! the first byte of each later one (else the connection is closed); a connection on which nothing
//! was read or written for `INVENTORY_IDLE_TIMEOUT` is closed, so a kept-alive connection may rest
//! between requests for that long. A request gets `INVENTORY_REQUEST_TIMEOUT` to
//! arrive and be answered (its response's headers; a stream's body is not bounded): 408 while its
//! body was still arriving, else 504. On shutdown, requests in progress get a grace
//! period, then their connections are closed.
//!
//! poem's own `Server` offers neither the header timeout nor a connection limit; requests still go
//! through the poem endpoint unchanged. hyper's own header timeout is not used: it also runs while
//! a kept-alive connection waits for its next request, so it would close every connection resting
//! longer than the header timeout, however long the idle timeout, and a client reusing one just
//! then would see its request fail.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::http::{timed_out, BodyProgress};
use crate::limits::Limits;

type Ep = Arc<BoxEndpoint<'static, Response>>;

/// Serves `ep` on `listener` until `stop`; then waits up to `grace` for requests in progress.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    limits: Limits,
    stop: CancellationToken,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let ep: Ep = Arc::new(ep.map_to_response().boxed());
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let force = CancellationToken::new();
    loop {
        // A free slot first: without one, connections stay in the kernel's backlog.
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        tracker.spawn(connection(Connection {
            tcp,
            slot,
            ep: Arc::clone(&ep),
            local: local.clone(),
            remote: RemoteAddr(Addr::SocketAddr(remote)),
            limits,
            stop: stop.clone(),
            force: force.clone(),
        }));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(
            connections = tracker.len(),
            "requests still in progress after the shutdown grace period; closing their connections"
        );
        force.cancel();
        tracker.wait().await;
    }
    Ok(())
}

struct Connection {
    tcp: TcpStream,
    /// Held while the connection is open (`INVENTORY_MAX_CONNECTIONS`).
    slot: OwnedSemaphorePermit,
    ep: Ep,
    local: LocalAddr,
    remote: RemoteAddr,
    limits: Limits,
    /// Graceful shutdown: finish the requests in progress, take no more.
    stop: CancellationToken,
    /// The grace period is over: close now.
    force: CancellationToken,
}

async fn connection(c: Connection) {
    let activity = Activity::new();
    let io = Tracked {
        inner: c.tcp,
        activity: Arc::clone(&activity),
    };
    let (ep, local, remote) = (c.ep, c.local, c.remote.clone());
    let timeout = c.limits.request_timeout;
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let ep = Arc::clone(&ep);
        // The request's headers are complete: it is in flight until its response's headers are.
        let in_flight = InFlight::start(&requests, req.version() == hyper::Version::HTTP_2);
        let mut req = poem::Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
        // Filled by `http::guard` as the body arrives: 408 or 504 on a timeout.
        let progress = Arc::new(BodyProgress::default());
        req.extensions_mut().insert(Arc::clone(&progress));
        async move {
            let resp = match tokio::time::timeout(timeout, ep.get_response(req)).await {
                Ok(resp) => resp,
                Err(_) => {
                    let resp = timed_out(timeout, &progress);
                    info!(
                        status = resp.status().as_u16(),
                        timeout_s = timeout.as_secs_f64(),
                        "request timed out"
                    );
                    resp
                }
            };
            drop(in_flight);
            Ok::<_, Infallible>(hyper::Response::from(resp))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let (idle, head) = (c.limits.idle_timeout, c.limits.header_timeout);
    let mut check = tokio::time::interval(
        (idle.min(head) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
    );
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    debug!(remote = %c.remote.0, error = %e, "connection ended on an error");
                }
                break;
            }
            _ = check.tick() => {
                if activity.idle() >= idle {
                    debug!(remote = %c.remote.0, idle_s = idle.as_secs(), "closing an idle connection");
                    break;
                }
                if activity.awaiting_head().is_some_and(|waited| waited >= head) {
                    debug!(
                        remote = %c.remote.0,
                        header_timeout_s = head.as_secs_f64(),
                        "closing a connection whose request headers did not arrive in time"
                    );
                    break;
                }
            }
            () = c.stop.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = c.force.cancelled() => break,
        }
    }
    drop(c.slot);
}

/// When a connection last moved bytes, and since when it has been receiving request headers.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last read or write.
    last_ms: AtomicU64,
    /// Milliseconds from `start` to the first byte of request headers not yet complete, plus one
    /// (0: none awaited). The first request's are awaited from the connection's start.
    head_ms: AtomicU64,
    /// Requests whose headers are complete and whose response's headers are not yet.
    in_flight: AtomicUsize,
    /// HTTP/2: bytes between requests are frames of the connection (pings, settings, window
    /// updates), not request headers; only the idle timeout applies.
    h2: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            head_ms: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes were read: with no request in flight on an HTTP/1 connection they begin the next
    /// request's headers, whose wait starts now unless it already has.
    fn read(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) {
            let _ = self
                .head_ms
                .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// How long the connection has been waiting for request headers to complete, if it is.
    fn awaiting_head(&self) -> Option<Duration> {
        match self.head_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(
                self.start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since - 1)),
            ),
        }
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request in flight on a connection ([`Activity::in_flight`]), from its headers to its
/// response's headers.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>, h2: bool) -> Self {
        if h2 {
            activity.h2.store(true, Ordering::Relaxed);
        }
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_ms.store(0, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when bytes last moved (a write the peer does not read does not count).
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
