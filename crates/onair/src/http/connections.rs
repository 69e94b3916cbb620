//! The HTTP listener's accept loop and one driver per connection: timeouts, connection caps
//! and the descriptor budget, in front of the axum router.
//!
//! `axum::serve` has no timer, so hyper's header timeout never fired and an idle or
//! half-sent connection stayed open forever (issue #18). Here each connection is a hyper
//! HTTP/1.1 connection (with upgrades, for WS-FLV and chat) driven by [`drive`], which knows
//! what the connection is doing from its [`ConnState`]:
//!
//! | state | ends when |
//! | --- | --- |
//! | idle (accepted, or its last response is done) | `http.idle_timeout` passes with no byte |
//! | reading a head (a byte came while idle) | the head is not complete `http.header_timeout` after its first byte |
//! | serving (a request is in, its response not done) | never by time: HTTP-FLV and other streams run as long as they stream; a request body must arrive within `http.body_timeout` of the head (408) |
//! | upgraded (WebSocket) | the socket's own protocol ends it (chat pings, WS-FLV write timeouts) |
//!
//! Admission, per accepted socket: an address (an IPv6 /64) with `http.max_connections_per_address`
//! open is answered 503 at once. When `http.max_connections` are open, or the descriptor
//! budget ([`Descriptors`]) has no room, the connection idle the longest (no request in
//! flight, never an upgraded one) is closed to make room; only when none is idle is the newcomer
//! answered 503. So idle connections, however many, can delay nobody's request: a flood of
//! them only evicts itself, oldest first, while streams and requests in progress are never
//! touched.
//!
//! With HTTPS on, the TLS handshake runs in the connection's task (so a slow handshake
//! never holds up the accept loop), within `http.header_timeout`, on the admitted socket:
//! it counts toward the same caps, and the idle/head timing starts once it is done.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::net::{BytesSent, Tracked, Traffic};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{Instrument, debug, warn};

use crate::api::extract::ClientIp;
use crate::descriptors::{Descriptors, PER_HTTP_CONNECTION, Permit};
use crate::metrics::Metrics;

/// Refused sockets that may linger at once to deliver their 503 (see [`refuse`]); past this
/// a refused socket is closed at once. They come out of the descriptor reserve.
const MAX_LINGERING: usize = 64;
/// How long a refused socket lingers for its client to read the 503.
const LINGER: Duration = Duration::from_secs(1);
/// Evictions that may be under way at once. Each admits a newcomer before the evicted
/// connection has closed, so this bounds how far the descriptor budget can be overdrawn.
const MAX_EVICTING: usize = 64;
/// How long the accept loop waits for an eviction under way to finish when
/// [`MAX_EVICTING`] are, before it answers a newcomer 503. Evicted connections close as
/// soon as their tasks run; on a loaded machine that can take a moment, and a newcomer
/// that an idle connection could make room for should not be refused for it.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// A head started while idle is marked by this in `head_started`.
const NO_HEAD: u64 = u64::MAX;

/// `[http]`'s timeouts and caps, as the listener uses them.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// A request head must be complete this long after its first byte.
    pub header_timeout: Duration,
    /// A request body must arrive in full this long after its head.
    pub body_timeout: Duration,
    /// A connection with no request and no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// `hub.write_timeout`: the TCP user timeout of every connection.
    pub stall: Duration,
}

impl Limits {
    /// `http`'s timeouts and caps, with `stall` (`hub.write_timeout`).
    pub(crate) fn new(http: &crate::config::HttpConfig, stall: Duration) -> Limits {
        Limits {
            header_timeout: http.header_timeout,
            body_timeout: http.body_timeout,
            idle_timeout: http.idle_timeout,
            max_connections: http.max_connections,
            max_per_address: http.max_connections_per_address,
            stall,
        }
    }

    /// Takes `http`'s timeouts and caps: the caps for connections admitted from now on, the
    /// timeouts for every connection's next deadline. The stall stays: `hub.write_timeout`
    /// is read elsewhere too, and waits for a restart.
    pub(crate) fn set(&mut self, http: &crate::config::HttpConfig) {
        *self = Limits::new(http, self.stall);
    }
}

/// [`Limits`] as the listener and `RunningServer::reload` share them.
pub(crate) type SharedLimits = Arc<parking_lot::RwLock<Limits>>;

/// What the accept loop needs besides the router.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub limits: SharedLimits,
    pub descriptors: Arc<Descriptors>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Serve HTTPS with the certificate current at each accept.
    pub tls: Option<Arc<crate::tls::Certificates>>,
}

/// Accepts HTTP connections until shutdown; each is driven in its own task, tracked by
/// `tasks`, so shutdown waits for them.
pub(crate) async fn serve(listener: TcpListener, app: Router, ctx: Listener) {
    let registry = Arc::new(Registry::new());
    let lingering = Arc::new(Semaphore::new(MAX_LINGERING));
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors despite the budget (another process's doing, or a
                // reserve too small): back off instead of spinning.
                warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        Metrics::inc(&ctx.metrics.http_connections);
        let ip = ClientIp::from_ip(peer.ip());
        let admitted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            a = registry.admit_waiting(ip, &ctx) => a,
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(refusal) => {
                Metrics::inc(&ctx.metrics.http_refused);
                debug!(%peer, ?refusal, "http connection refused");
                refuse(tcp, refusal, &lingering, &ctx.tasks);
                continue;
            }
        };
        crate::net::configure(&tcp, ctx.limits.read().stall);
        // The connection's span: what the FLV feeds and sockets upgraded from it log carries
        // the peer; they record their protocol and channel on it once known.
        let span = tracing::info_span!(
            "http_conn",
            %peer,
            conn = slot.conn.id,
            protocol = tracing::field::Empty,
            channel = tracing::field::Empty
        );
        ctx.tasks
            .spawn(drive(tcp, peer, slot, app.clone(), ctx.clone()).instrument(span));
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its address has `max_connections_per_address` open.
    Address,
    /// `max_connections` are open, or the descriptor budget is spent, and none is idle.
    Full,
    /// As `Full`, but idle connections could make room once the evictions under way have
    /// finished: [`Registry::admit_waiting`] waits for one before refusing.
    Evicting,
}

/// Answers a refused socket 503 without reading its request, then closes it. Closing a
/// socket whose request is still unread makes the kernel send a reset, which can destroy the
/// 503 before the client reads it; so the socket lingers for up to [`LINGER`], reading and
/// dropping what the client sends, with at most [`MAX_LINGERING`] such sockets at a time.
fn refuse(tcp: TcpStream, refusal: Refusal, lingering: &Arc<Semaphore>, tasks: &TaskTracker) {
    let detail = match refusal {
        Refusal::Address => "too many connections from this address; close some and retry",
        Refusal::Full | Refusal::Evicting => {
            "the server has as many connections as it takes; retry shortly"
        }
    };
    let problem =
        crate::problem::ApiError::new(crate::problem::ProblemKind::Busy, detail).problem();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncache-control: no-store\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        crate::problem::PROBLEM_JSON,
        body.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    // A fresh socket's send buffer is empty, so the whole answer fits; if it somehow does
    // not, the client gets a short reply and a close, which is still a refusal.
    let _ = tcp.try_write(&answer);
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tasks.spawn(async move {
        let _permit = permit;
        let sock = socket2::SockRef::from(&tcp);
        let _ = sock.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            loop {
                if tcp.readable().await.is_err() {
                    return;
                }
                match tcp.try_read(&mut sink) {
                    // The client read the answer and closed.
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        })
        .await;
    });
}

/// Every open connection: counts per address, and the idle ones oldest first.
#[derive(Debug)]
struct Registry {
    inner: Mutex<Inner>,
    epoch: Instant,
    /// Woken when an evicted connection has closed.
    evicted: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<ConnState>>,
    per_ip: HashMap<ClientIp, usize>,
    /// Connections as they went idle, oldest first: (id, the connection's idle generation
    /// then). An entry whose connection has since served a request, closed or been evicted
    /// is stale and skipped; stale entries are dropped when they pile up.
    idle: VecDeque<(u64, u64)>,
    /// Evicted connections that have not closed yet.
    evicting: usize,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
            evicted: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// [`admit`](Self::admit), waiting up to [`EVICTION_WAIT`] for evictions under way to
    /// finish when they are what stands in the way. The accept loop waits here, so the
    /// kernel's backlog holds the next sockets meanwhile.
    async fn admit_waiting(
        self: &Arc<Self>,
        ip: ClientIp,
        ctx: &Listener,
    ) -> Result<Slot, Refusal> {
        let until = Instant::now() + EVICTION_WAIT;
        loop {
            // Made before trying, so a close between the try and the wait still wakes it.
            let closed = self.evicted.notified();
            match self.admit(ip, ctx) {
                Err(Refusal::Evicting) if Instant::now() < until => {
                    if tokio::time::timeout_at(until, closed).await.is_err() {
                        return self.admit(ip, ctx);
                    }
                }
                admitted => return admitted,
            }
        }
    }

    /// Admits a connection from `ip`, evicting the longest-idle one if that is what it takes.
    fn admit(self: &Arc<Self>, ip: ClientIp, ctx: &Listener) -> Result<Slot, Refusal> {
        let limits = ctx.limits.read().clone();
        let now = self.now_ms();
        let mut inner = self.inner.lock();
        if inner.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_per_address {
            return Err(Refusal::Address);
        }
        let room = if inner.open.len() < limits.max_connections {
            ctx.descriptors.try_take(PER_HTTP_CONNECTION)
        } else {
            None
        };
        let permit = match room {
            Some(permit) => permit,
            None => {
                if inner.evicting >= MAX_EVICTING {
                    return Err(if inner.has_idle() {
                        Refusal::Evicting
                    } else {
                        Refusal::Full
                    });
                }
                if !inner.evict_oldest_idle() {
                    return Err(Refusal::Full);
                }
                Metrics::inc(&ctx.metrics.http_evicted);
                ctx.descriptors.take_anyway(PER_HTTP_CONNECTION)
            }
        };
        inner.next_id += 1;
        let conn = Arc::new(ConnState {
            id: inner.next_id,
            ip,
            registry: self.clone(),
            busy: AtomicU32::new(0),
            upgraded: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(NO_HEAD),
            generation: AtomicU64::new(0),
            stop: ctx.shutdown.child_token(),
            sent: BytesSent::default(),
        });
        inner.open.insert(conn.id, conn.clone());
        *inner.per_ip.entry(ip).or_default() += 1;
        inner.idle.push_back((conn.id, 0));
        ctx.metrics.http_open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            conn,
            _permit: permit,
            metrics: ctx.metrics.clone(),
        })
    }
}

impl Inner {
    /// Asks the connection idle the longest to close; `false` when none is idle.
    fn evict_oldest_idle(&mut self) -> bool {
        while let Some((id, generation)) = self.idle.pop_front() {
            let Some(conn) = self.open.get(&id) else {
                continue;
            };
            if !conn.is_idle_at(generation) {
                continue;
            }
            conn.evicted.store(true, Ordering::Release);
            conn.stop.cancel();
            self.evicting += 1;
            return true;
        }
        false
    }

    /// Whether some connection is idle (and so could be evicted), dropping stale entries
    /// from the front of the queue on the way.
    fn has_idle(&mut self) -> bool {
        while let Some(&(id, generation)) = self.idle.front() {
            if self
                .open
                .get(&id)
                .is_some_and(|conn| conn.is_idle_at(generation))
            {
                return true;
            }
            self.idle.pop_front();
        }
        false
    }

    /// Drops stale idle entries once they outnumber the connections: each request leaves
    /// one behind, so a long-lived server would otherwise grow the queue without bound.
    fn compact(&mut self) {
        if self.idle.len() <= 2 * self.open.len() + 1024 {
            return;
        }
        let open = &self.open;
        self.idle.retain(|(id, generation)| {
            open.get(id)
                .is_some_and(|conn| conn.is_idle_at(*generation))
        });
    }
}

/// What the driver, the socket wrapper and the bodies know of one connection.
#[derive(Debug)]
struct ConnState {
    id: u64,
    ip: ClientIp,
    registry: Arc<Registry>,
    /// Requests whose response has not ended (HTTP/1.1 serves one at a time).
    busy: AtomicU32,
    /// A WebSocket now owns the socket.
    upgraded: AtomicBool,
    /// Asked to close to make room.
    evicted: AtomicBool,
    /// When it last went idle, ms since the registry's epoch.
    idle_since: AtomicU64,
    /// When the first byte of a head came while idle; [`NO_HEAD`] when none did.
    head_started: AtomicU64,
    /// Bumped each time it goes idle, so that idle entries of an earlier idle spell are
    /// told apart.
    generation: AtomicU64,
    /// Cancelled to evict it, or (as a child of the server's token) at shutdown.
    stop: CancellationToken,
    /// Bytes written to the socket.
    sent: BytesSent,
}

impl ConnState {
    fn is_idle_at(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
            && self.busy.load(Ordering::Acquire) == 0
            && !self.upgraded.load(Ordering::Acquire)
            && !self.evicted.load(Ordering::Acquire)
    }

    /// A request's head is in: the connection is serving until its response ends.
    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NO_HEAD, Ordering::Release);
        Busy(self.clone())
    }

    /// Bytes came in: the first while idle starts the header timeout.
    fn bytes_arrived(&self) {
        if self.busy.load(Ordering::Acquire) == 0 {
            let now = self.registry.now_ms();
            let _ = self.head_started.compare_exchange(
                NO_HEAD,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn went_idle(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) != 1 || self.upgraded.load(Ordering::Acquire) {
            return;
        }
        self.idle_since
            .store(self.registry.now_ms(), Ordering::Release);
        self.head_started.store(NO_HEAD, Ordering::Release);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut inner = self.registry.inner.lock();
        inner.idle.push_back((self.id, generation));
        inner.compact();
    }

    /// When the connection must have done something by, and what it is then; `None` while
    /// it serves a request or belongs to a WebSocket.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Timeout)> {
        if self.busy.load(Ordering::Acquire) > 0 || self.upgraded.load(Ordering::Acquire) {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        let registry = &self.registry;
        Some(if head == NO_HEAD {
            let idle = self.idle_since.load(Ordering::Acquire);
            (registry.at(idle) + limits.idle_timeout, Timeout::Idle)
        } else {
            (registry.at(head) + limits.header_timeout, Timeout::Header)
        })
    }
}

/// The connection serves a request while this lives: the request's handler holds it, then
/// the response body, until hyper has sent the body's end (or drops it).
#[derive(Debug)]
struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.went_idle();
    }
}

/// One admitted connection's place: its registry entry and its descriptors, given back when
/// the socket closes. It travels with the socket (inside [`Tracked`]), also into a
/// WebSocket after an upgrade.
#[derive(Debug)]
struct Slot {
    conn: Arc<ConnState>,
    _permit: Permit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let conn = &self.conn;
        let mut inner = conn.registry.inner.lock();
        inner.open.remove(&conn.id);
        if let Some(n) = inner.per_ip.get_mut(&conn.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&conn.ip);
            }
        }
        if conn.evicted.load(Ordering::Acquire) {
            inner.evicting -= 1;
            conn.registry.evicted.notify_waiters();
        }
        self.metrics.http_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection's socket tells its slot: bytes came (the idle and head clocks), bytes
/// went (the count HTTP-FLV compares with its body), and that the descriptor is about to
/// close, after which nobody may ask it any more.
impl Traffic for Slot {
    fn arrived(&self) {
        self.conn.bytes_arrived();
    }

    fn sent(&self, n: usize) {
        self.conn.sent.add(n);
    }

    fn closing(&self) {
        self.conn.sent.set_socket(None);
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    /// No byte of a next request within `idle_timeout`.
    Idle,
    /// A head not complete within `header_timeout` of its first byte.
    Header,
}

/// How a connection's driver ended.
#[derive(Debug)]
enum End {
    Closed(hyper::Result<()>),
    TimedOut(Timeout),
    Evicted,
}

/// Serves one connection, HTTPS after a TLS handshake when `ctx.tls` is set.
async fn drive(tcp: TcpStream, peer: SocketAddr, slot: Slot, app: Router, ctx: Listener) {
    let conn = slot.conn.clone();
    // Cleared when `Tracked` drops the stream (see its `Drop`).
    conn.sent.set_socket(Some(crate::net::SocketFd::of(&tcp)));
    let tracked = Tracked::new(tcp, Box::new(slot));
    let Some(tls) = &ctx.tls else {
        return drive_io(tracked, conn, peer, app, ctx).await;
    };
    let acceptor = tls.acceptor();
    let limit = ctx.limits.read().header_timeout;
    let handshake = tokio::select! {
        _ = conn.stop.cancelled() => return,
        h = tokio::time::timeout(limit, acceptor.accept(tracked)) => h,
    };
    match handshake {
        Ok(Ok(stream)) => {
            // The handshake's bytes were no request head: the connection is idle now.
            conn.head_started.store(NO_HEAD, Ordering::Release);
            conn.idle_since
                .store(conn.registry.now_ms(), Ordering::Release);
            drive_io(stream, conn, peer, app, ctx).await;
        }
        Ok(Err(e)) => debug!(%peer, error = %e, "tls handshake failed; connection closed"),
        Err(_) => {
            Metrics::inc(&ctx.metrics.http_header_timeouts);
            debug!(%peer, "tls handshake not complete in time; connection closed");
        }
    }
}

/// Serves one connection until it closes, times out or is evicted; at shutdown, lets the
/// request in flight finish (hyper's graceful shutdown) and closes.
async fn drive_io<T>(io: T, conn: Arc<ConnState>, peer: SocketAddr, app: Router, ctx: Listener)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let io = TokioIo::new(io);
    let service = {
        let conn = conn.clone();
        let body_timeout = ctx.limits.read().body_timeout;
        let metrics = ctx.metrics.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = conn.begin();
            let app = app.clone();
            let conn = conn.clone();
            let metrics = metrics.clone();
            async move {
                let (mut parts, body) = request.into_parts();
                // The login limiter keys on the socket's address, never a forwarding header.
                parts.extensions.insert(ConnectInfo(peer));
                parts.extensions.insert(conn.sent.clone());
                let body = DeadlineBody {
                    inner: body,
                    deadline: Instant::now() + body_timeout,
                    sleep: None,
                    metrics,
                };
                let request = Request::from_parts(parts, Body::new(body));
                let response = match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    conn.upgraded.store(true, Ordering::Release);
                }
                Ok::<_, Infallible>(response.map(|inner| TrackedBody { inner, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The driver times heads itself, from their first byte (hyper's timer would also run
    // while the connection is idle, so idle and header time could not differ).
    builder.header_read_timeout(None);
    let mut connection = Box::pin(builder.serve_connection(io, service).with_upgrades());
    let mut sleep = Box::pin(tokio::time::sleep(Duration::ZERO));
    let mut armed: Option<Instant> = None;
    let mut stopped = Box::pin(conn.stop.clone().cancelled_owned());
    let mut stopping = false;
    let end = std::future::poll_fn(|cx| {
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            if conn.evicted.load(Ordering::Acquire) && conn.busy.load(Ordering::Acquire) == 0 {
                return Poll::Ready(End::Evicted);
            }
            connection.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(End::Closed(result));
        }
        // Polling the connection is what moves its state (reads, requests, response ends),
        // so the deadline is read again after every poll.
        let Some((deadline, timeout)) = conn.deadline(&ctx.limits.read()) else {
            armed = None;
            return Poll::Pending;
        };
        if armed != Some(deadline) {
            sleep.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(End::TimedOut(timeout)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match end {
        End::Closed(Ok(())) => {}
        End::Closed(Err(e)) => debug!(%peer, error = %e, "http connection ended"),
        End::TimedOut(Timeout::Idle) => Metrics::inc(&ctx.metrics.http_idle_timeouts),
        End::TimedOut(Timeout::Header) => {
            Metrics::inc(&ctx.metrics.http_header_timeouts);
            debug!(%peer, "request head not complete in time; closed");
        }
        End::Evicted => debug!(%peer, "idle connection closed to make room"),
    }
}

/// A response body that keeps its connection marked as serving until it ends.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails with [`BodyTimedOut`](crate::net::BodyTimedOut) once its deadline passes unfinished.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Made on the first wait: most bodies are empty or already buffered with the head.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    metrics: Arc<Metrics>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            Metrics::inc(&self.metrics.http_body_timeouts);
            return Poll::Ready(Some(Err(Box::new(crate::net::BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
