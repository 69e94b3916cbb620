//! The RTMP driver: one task per connection runs a sans-IO [`ServerSession`] over a TCP
//! socket, publishing into the hub or playing out of it. RTMPS is the same session over a
//! TLS stream: its listener has its own accept loop ([`serve`] with certificates), and the
//! TLS handshake runs in the connection's task, bounded by `rtmp.handshake_timeout`.
//!
//! Each wake-up reads what the socket has, feeds the session, and writes everything that
//! became ready (session output and hub frames) with one `writev`. Media for players is the
//! hub entry's shared RTMP encoding, so a frame is chunked once for every RTMP viewer.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`Ingest`] (what the driver may touch), the accept loop, one task per connection, the TLS handshake |
//! | `connection.rs` | the connection's loop: socket, session timers, hub wake-ups, shutdown; event dispatch |
//! | `publish.rs` | publish: authorise the key, claim the channel, push frames, live-session rows |
//! | `play.rs` | play: subscribe (within the channel's viewer cap), wait for a publisher, shared or per-session RTMP chunks |
//! | `vod.rs` | play on the `vod` application: a catalogue video from [`VodLibrary`](crate::vod::VodLibrary), paced in real time, with pause, seek and an end |
//! | `limits.rs` | `rtmp.max_connections` and `rtmp.max_connections_per_address` |
//!
//! [`ServerSession`]: onair_rtmp::session::ServerSession

mod connection;
mod limits;
mod play;
mod publish;
mod vod;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onair_hub::Hub;
use onair_rtmp::session::SessionError;
use onair_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, field, info, info_span, warn};

use self::connection::{Connection, Reader, Writer};
pub use self::limits::ConnectionLimits;
use crate::auth::PublishAuth;
use crate::config::{HubSection, RtmpConfig};
use crate::descriptors::{Descriptors, PER_RTMP_CONNECTION};
use crate::hls::Hls;
use crate::lives::Lives;
use crate::metrics::{Metrics, RtmpRefusal};
use crate::tls::Certificates;
use crate::vod::VodLibrary;

/// What the RTMP driver may touch: built once by the server, shared by every connection.
#[derive(Debug)]
pub struct Ingest {
    /// `[rtmp]`: the application name, chunk size, limits and timeouts of a session.
    pub rtmp: RtmpConfig,
    /// `[hub]`: write timeout, takeover, how long viewers wait for a publisher.
    pub hub_config: HubSection,
    /// Where publishers push and players subscribe.
    pub hub: Arc<Hub>,
    /// Who may publish.
    pub auth: Arc<dyn PublishAuth>,
    /// The live registry: one entry per accepted publish.
    pub lives: Arc<Lives>,
    /// Live-session rows and key use, written off the connection's task.
    pub store: Store,
    /// Starts the HLS recorder of a publish.
    pub hls: Arc<Hls>,
    /// Connection, refusal and byte counters.
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: every connection says goodbye.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks and the store writes they spawn.
    pub tasks: TaskTracker,
    /// The descriptor budget every connection takes its socket from.
    pub descriptors: Arc<Descriptors>,
    /// `rtmp.max_connections` and `_per_address`, over the RTMP and RTMPS listeners together.
    pub connection_limits: Arc<ConnectionLimits>,
    /// Catalogue videos for plays on the `vod` application.
    pub vod: Arc<VodLibrary>,
    /// Pulls a channel live on another node for a viewer here; `None` on a single node.
    pub relay: Option<Arc<crate::relay::Relay>>,
    /// Starts the pushes of a publish to its restream destinations.
    pub restreams: Arc<crate::restream::Restreams>,
}

/// The message stream id players get from their first `createStream`; shared media chunks
/// are encoded for it.
const SHARED_STREAM_ID: u32 = 1;

/// Accepts RTMP connections until shutdown; with `tls`, RTMPS ones, each served the
/// certificate current when it was accepted. Both listeners share the descriptor budget.
pub(crate) async fn serve(ctx: Arc<Ingest>, listener: TcpListener, tls: Option<Arc<Certificates>>) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let what = if tls.is_some() { "rtmps" } else { "rtmp" };
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(error = %e, "{what} accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let place = match ctx.connection_limits.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                ctx.metrics.rtmp_refused(why);
                // RTMP can say "busy" only once the client asks to publish or play: it is
                // let that far, told which cap, and closed. It holds no place, yet still a
                // descriptor, and lives at most rtmp.handshake_timeout.
                let Some(permit) = ctx.descriptors.try_take(PER_RTMP_CONNECTION) else {
                    continue;
                };
                let reason = ctx.connection_limits.describe(why);
                debug!(%peer, ?why, "{what} connection refused: a connection cap is reached");
                let acceptor = tls.as_ref().map(|t| t.acceptor());
                let span = info_span!("rtmp", %peer, protocol = what, refused = true);
                ctx.tasks.spawn(
                    refuse(ctx.clone(), socket, peer, permit, acceptor, reason).instrument(span),
                );
                continue;
            }
        };
        // Past the budget a connection would take a descriptor that recordings and the
        // database are counting on: it is closed at once.
        let Some(permit) = ctx.descriptors.try_take(PER_RTMP_CONNECTION) else {
            ctx.metrics.rtmp_refused(RtmpRefusal::Descriptors);
            debug!(%peer, "{what} connection closed: the descriptor budget is spent");
            continue;
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = info_span!(
            "rtmp",
            %peer,
            conn = id,
            protocol = what,
            tls = tls.is_some(),
            channel = field::Empty
        );
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        ctx.tasks.spawn(
            connection(ctx.clone(), socket, peer, (permit, place), acceptor).instrument(span),
        );
    }
}

async fn connection(
    ctx: Arc<Ingest>,
    socket: TcpStream,
    peer: SocketAddr,
    _held: (crate::descriptors::Permit, limits::Place),
    tls: Option<TlsAcceptor>,
) {
    Metrics::inc(&ctx.metrics.rtmp_connections);
    ctx.metrics.rtmp_open.fetch_add(1, Ordering::Relaxed);
    crate::net::configure(&socket, ctx.hub_config.write_timeout);
    // The halves own the socket for as long as the session runs.
    let fd = crate::net::SocketFd::of(&socket);
    if let Some((reader, writer)) = open(&ctx, socket, tls).await {
        session(&ctx, reader, writer, peer, fd).await;
    }
    ctx.metrics.rtmp_open.fetch_sub(1, Ordering::Relaxed);
}

/// A connection past a connection cap: its publish or play is answered with `reason`.
async fn refuse(
    ctx: Arc<Ingest>,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: crate::descriptors::Permit,
    tls: Option<TlsAcceptor>,
    reason: String,
) {
    crate::net::configure(&socket, ctx.hub_config.write_timeout);
    let limit = ctx.rtmp.handshake_timeout;
    let told = tokio::time::timeout(limit, async {
        let (reader, writer) = open(&ctx, socket, tls).await?;
        let mut conn = Connection::new(ctx.clone(), reader, writer, peer);
        conn.refusal = Some(reason);
        conn.run().await.ok()
    })
    .await;
    if told.is_err() {
        debug!(
            ?limit,
            "refused connection asked for nothing in time; closed"
        );
    }
}

/// The socket's halves, after the TLS handshake for RTMPS. A peer that does not complete
/// the handshake (plain RTMP on the TLS port, a client that refuses our certificate, a
/// silent one) is closed here; that is the peer's business, so it is logged at info.
async fn open(
    ctx: &Ingest,
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
) -> Option<(Reader, Writer)> {
    let Some(acceptor) = tls else {
        let (reader, writer) = socket.into_split();
        return Some((Box::new(reader), Box::new(writer)));
    };
    let limit = ctx.rtmp.handshake_timeout;
    let handshake = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        h = tokio::time::timeout(limit, acceptor.accept(socket)) => h,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let (reader, writer) = tokio::io::split(stream);
            Some((Box::new(reader), Box::new(writer)))
        }
        Ok(Err(e)) => {
            Metrics::inc(&ctx.metrics.peer_errors);
            info!(error = %e, "tls handshake failed; connection closed");
            None
        }
        Err(_) => {
            Metrics::inc(&ctx.metrics.peer_errors);
            info!(
                ?limit,
                "tls handshake not complete in time; connection closed"
            );
            None
        }
    }
}

async fn session(
    ctx: &Arc<Ingest>,
    reader: Reader,
    writer: Writer,
    peer: SocketAddr,
    fd: crate::net::SocketFd,
) {
    let mut conn = Connection::new(ctx.clone(), reader, writer, peer);
    conn.socket = Some(fd);
    match conn.run().await {
        Ok(()) => debug!("connection closed"),
        Err(ConnError::Peer(reason)) => {
            Metrics::inc(&ctx.metrics.peer_errors);
            warn!(%reason, "connection closed");
            // A FIN, not the reset that closing with the peer's bytes unread would send.
            conn.close_cleanly().await;
        }
        Err(ConnError::Io(e)) => debug!(error = %e, "connection lost"),
    }
    conn.finish();
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The peer broke the protocol or a limit; logged as a warning with the reason.
    #[error("{0}")]
    Peer(String),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<SessionError> for ConnError {
    fn from(e: SessionError) -> Self {
        ConnError::Peer(e.to_string())
    }
}
