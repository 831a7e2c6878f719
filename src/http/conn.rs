//! Serving connections: the accept loop, a cap on open connections, and the
//! deadlines that close slow, stalled or idle clients.
//!
//! hyper parses HTTP/1; this module decides how long each connection may take.
//! Every connection has a [`Clock`] that knows where it is in its request
//! cycle, fed by three small hooks: the socket (the first byte of a request),
//! the request body (its end) and the response body (its end). The connection's
//! task sleeps until the deadline of the current phase and drops the connection
//! when it passes, which closes the socket and frees its slot:
//!
//! | phase | deadline |
//! |---|---|
//! | a request head is due (from the accept, or the first byte after a keep-alive pause) | `header_timeout` |
//! | the handler has the request, its body is still coming | `body_timeout` from the end of the head |
//! | the answer is being made or sent | none (a long command, an SSE stream), but a client that stops reading for `idle_timeout` is dropped |
//! | between requests (keep-alive) | `idle_timeout` |
//!
//! At most `max_connections` are served at once; the accept loop waits for a
//! free slot, so more clients queue in the kernel's listen backlog.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::settings::HttpLimits;

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request head is due.
    Head,
    /// The handler has the request; its body is still coming.
    Body,
    /// The answer is being made or sent.
    Busy,
    /// Between requests.
    Idle,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    /// Counts requests, so that a late hook of an old request changes nothing.
    request: u64,
    /// Since when a write has waited for the client to read.
    write_blocked: Option<Instant>,
}

/// One connection's phase and the moment it began.
#[derive(Debug)]
struct Clock {
    state: Mutex<State>,
    /// Woken on every change of phase, so the connection's task re-arms its timer.
    changed: Notify,
}

impl Clock {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                request: 0,
                write_blocked: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: &mut State, phase: Phase) {
        state.phase = phase;
        state.since = Instant::now();
        self.changed.notify_one();
    }

    /// A new request reached the handler; returns its number.
    fn request_started(&self, body_done: bool) -> u64 {
        let mut s = self.lock();
        s.request += 1;
        self.set(&mut s, if body_done { Phase::Busy } else { Phase::Body });
        s.request
    }

    /// Request `n`'s body was read to its end (or dropped by its handler).
    fn body_done(&self, n: u64) {
        let mut s = self.lock();
        if s.request == n && s.phase == Phase::Body {
            self.set(&mut s, Phase::Busy);
        }
    }

    /// Request `n`'s answer was sent (or dropped).
    fn answered(&self, n: u64) {
        let mut s = self.lock();
        if s.request == n && matches!(s.phase, Phase::Body | Phase::Busy) {
            self.set(&mut s, Phase::Idle);
        }
    }

    /// Bytes arrived from the client.
    fn bytes_read(&self) {
        let mut s = self.lock();
        if s.phase == Phase::Idle {
            self.set(&mut s, Phase::Head);
        }
    }

    fn write_blocked(&self, blocked: bool) {
        let mut s = self.lock();
        match (blocked, s.write_blocked) {
            (true, None) => {
                s.write_blocked = Some(Instant::now());
                self.changed.notify_one();
            }
            (false, Some(_)) => s.write_blocked = None,
            _ => {}
        }
    }

    /// When the current phase runs out, and what it is.
    fn deadline(&self, limits: &HttpLimits) -> (Option<Instant>, Phase) {
        let s = self.lock();
        let deadline = match s.phase {
            Phase::Head => Some(s.since + limits.header_timeout),
            Phase::Body => Some(s.since + limits.body_timeout),
            Phase::Idle => Some(s.since + limits.idle_timeout),
            Phase::Busy => None,
        };
        let stalled_write = s.write_blocked.map(|t| t + limits.idle_timeout);
        let deadline = match (deadline, stalled_write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (deadline, s.phase)
    }
}

/// The socket, with a hook on reads and writes.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        this.clock.write_blocked(result.is_pending());
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.clock.write_blocked(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that tells the clock when it has been read.
struct RequestBody {
    inner: Incoming,
    clock: Arc<Clock>,
    request: u64,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let result = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(result, Poll::Ready(None)) {
            self.clock.body_done(self.request);
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // A handler that answers without reading the body: the rest of it is
        // drained (or the connection closed) after the answer.
        self.clock.body_done(self.request);
    }
}

/// A response body that tells the clock when it has been sent.
struct ResponseBody {
    inner: Body,
    clock: Arc<Clock>,
    request: u64,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let result = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(result, Poll::Ready(None)) {
            self.clock.answered(self.request);
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.clock.answered(self.request);
    }
}

/// The router, seen by hyper, with the clock's hooks on both bodies.
#[derive(Clone)]
struct ConnService {
    router: Router,
    clock: Arc<Clock>,
    keep_alive: HeaderValue,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        use tower_service::Service as _;
        let n = self.clock.request_started(request.body().is_end_stream());
        let clock = self.clock.clone();
        let request = request.map(|inner| {
            Body::new(RequestBody {
                inner,
                clock: clock.clone(),
                request: n,
            })
        });
        // A Router is always ready; `call` needs no `poll_ready` first.
        let answer = self.router.clone().call(request);
        let keep_alive = self.keep_alive.clone();
        Box::pin(async move {
            let mut response = answer.await?;
            response
                .headers_mut()
                .entry(http::header::HeaderName::from_static("keep-alive"))
                .or_insert(keep_alive);
            Ok(response.map(|inner| {
                Body::new(ResponseBody {
                    inner,
                    clock,
                    request: n,
                })
            }))
        })
    }
}

/// Accepts connections on `listener` and serves `app` on each until
/// `shutdown`; then lets open requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    grace: std::time::Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let hard_stop = CancellationToken::new();
    let keep_alive = HeaderValue::from_str(&format!("timeout={}", limits.idle_timeout.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("timeout=5"));
    let mut warned_full = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max = limits.max_connections,
                        "HTTP connection cap reached (EXECUTION_HTTP_MAX_CONNECTIONS); new clients wait until one closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors or memory: give connections a moment to close.
                    if !is_per_connection_error(&e) {
                        tracing::warn!(error = %e, "cannot accept an HTTP connection; retrying shortly");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if slots.available_permits() > 0 {
            warned_full = false;
        }
        // Small JSON answers must not wait for delayed ACKs (Nagle): ~40 ms each.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = Connection {
            app: app.clone(),
            limits,
            keep_alive: keep_alive.clone(),
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream).await;
            drop(permit);
        });
    }
    // Wait for open connections (graceful: idle ones close at once, busy ones
    // finish their answer), then close whatever is left.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("HTTP connections still open {} s after shutdown; closing them", grace.as_secs());
        }
    }
    hard_stop.cancel();
}

/// Errors of one connection (the client gave up before we accepted it).
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

struct Connection {
    app: Router,
    limits: HttpLimits,
    keep_alive: HeaderValue,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let clock = Arc::new(Clock::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            clock: clock.clone(),
        });
        let service = ConnService {
            router: self.app,
            clock: clock.clone(),
            keep_alive: self.keep_alive,
        };
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let (deadline, phase) = clock.deadline(&self.limits);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = sleep_until(deadline) => {
                    // The phase may have moved on since the timer was armed.
                    let (now_deadline, _) = clock.deadline(&self.limits);
                    if now_deadline.is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(?phase, "closing a slow or idle HTTP connection");
                        return;
                    }
                }
                () = clock.changed.notified() => {}
                () = self.shutdown.cancelled(), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = self.hard_stop.cancelled() => return,
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Raises the soft limit on open files to the hard limit, so that the
/// connection cap, not the descriptor limit, decides how many clients wait.
#[cfg(unix)]
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::debug!("cannot raise the open file limit");
            }
        }
    }
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() {}
