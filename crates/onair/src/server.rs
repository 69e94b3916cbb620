//! Starting and stopping the whole server: listeners, shared state, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onair_hub::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{PublishAuth, StoreAuth};
use crate::config::Config;
use crate::hls::Hls;
use crate::lives::{LiveStream, Lives};
use crate::platform::Platform;

/// What every connection shares.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: Config,
    /// The channels.
    pub hub: Arc<Hub>,
    /// Who may publish.
    pub auth: Arc<dyn PublishAuth>,
    /// The store and signing key.
    pub platform: Arc<Platform>,
    /// The publishes live on this node, tied to their keys and channel rows.
    pub lives: Arc<Lives>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Tracks every connection task so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// HLS live playlists and replays.
    pub hls: Arc<Hls>,
    /// Every channel's chat room.
    pub chat: Arc<onair_chat::ChatService>,
}

impl AppState {
    /// Shared state for `config` and `platform` with no listeners: what `Router::oneshot`
    /// tests need.
    pub fn new(config: Config, platform: Arc<Platform>) -> Arc<AppState> {
        let hub = Hub::new(config.hub.hub_config());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let hls = Hls::new(
            &config,
            hub.clone(),
            platform.clone(),
            tasks.clone(),
            shutdown.clone(),
        );
        let lives = Arc::new(Lives::default());
        let chat = crate::chat::service(&config, platform.clone(), hub.clone(), lives.clone());
        Arc::new(AppState {
            hub,
            chat,
            auth: StoreAuth::new(platform.clone(), config.dev.clone()),
            config,
            platform,
            lives,
            shutdown,
            metrics: Metrics::default(),
            tasks,
            hls,
        })
    }

    /// Ends the live publish that uses the stream key `jti`, if there is one on this node.
    /// Other nodes (and this one, if the call is missed) end it on their next store check.
    pub fn kick_key(&self, jti: &str) -> bool {
        match self.lives.channel_of_key(jti) {
            Some(channel) => crate::lives::kick_if_key(&self.lives, &self.hub, &channel, jti),
            None => false,
        }
    }

    /// Ends the live publish on `channel`, whatever its key.
    pub fn kick_channel(&self, channel: &str) -> bool {
        self.hub.kick(channel)
    }

    /// Every live stream with its figures, busiest first.
    pub fn live_now(&self) -> Vec<LiveStream> {
        self.lives.snapshot(&self.hub)
    }
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// RTMP connections accepted.
    pub rtmp_connections: AtomicU64,
    /// RTMP connections open now.
    pub rtmp_open: AtomicU64,
    /// Publishes refused (bad key, channel busy, …).
    pub publishes_refused: AtomicU64,
    /// Connections closed because the peer misbehaved (bad bytes, timeouts).
    pub peer_errors: AtomicU64,
    /// Viewers disconnected for being too slow.
    pub viewers_dropped_slow: AtomicU64,
    /// Media bytes received from publishers.
    pub bytes_in: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A server that is running.
#[derive(Debug)]
pub struct RunningServer {
    /// Where the RTMP listener is bound.
    pub rtmp_addr: SocketAddr,
    /// Where the HTTP listener is bound.
    pub http_addr: SocketAddr,
    state: Arc<AppState>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl RunningServer {
    /// Binds the listeners and starts serving. Publishes are authorised by the keys in
    /// `platform`'s store, then by the `[dev]` keys.
    pub async fn start(
        config: Config,
        platform: Arc<Platform>,
    ) -> Result<RunningServer, StartError> {
        let rtmp = crate::net::listen(config.rtmp.listen).map_err(|source| StartError::Bind {
            addr: config.rtmp.listen,
            what: "rtmp",
            source,
        })?;
        let http = crate::net::listen(config.http.listen).map_err(|source| StartError::Bind {
            addr: config.http.listen,
            what: "http",
            source,
        })?;
        let rtmp_addr = rtmp.local_addr().map_err(|source| StartError::Bind {
            addr: config.rtmp.listen,
            what: "rtmp",
            source,
        })?;
        let http_addr = http.local_addr().map_err(|source| StartError::Bind {
            addr: config.http.listen,
            what: "http",
            source,
        })?;
        let state = AppState::new(config, platform);
        state.tasks.spawn(crate::lives::watch(
            state.lives.clone(),
            state.hub.clone(),
            state.platform.clone(),
            state.shutdown.clone(),
        ));
        state.tasks.spawn(crate::platform::housekeeping(
            state.platform.clone(),
            state.shutdown.clone(),
        ));
        let hls = state.hls.clone();
        let shutdown = state.shutdown.clone();
        state.tasks.spawn(async move {
            hls.recover().await;
            crate::hls::retention::run(hls, shutdown).await;
        });
        state
            .tasks
            .spawn(state.chat.clone().run(state.shutdown.clone()));
        state.tasks.spawn(crate::ingest::serve(state.clone(), rtmp));
        state.tasks.spawn(crate::http::serve(state.clone(), http));
        info!(%rtmp_addr, %http_addr, "listening");
        Ok(RunningServer {
            rtmp_addr,
            http_addr,
            state,
        })
    }

    /// The shared state (hub, config, metrics).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.state.hub
    }

    /// Stops accepting, ends publishes and playback, and waits up to `grace` for connections
    /// to finish. Returns whether everything finished within the grace.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.state.shutdown.cancel();
        self.state.hub.close();
        self.state.tasks.close();
        if tokio::time::timeout(grace, self.state.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                remaining = self.state.tasks.len(),
                "shutdown grace ran out; closing the rest"
            );
            return false;
        }
        true
    }

    /// Runs until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        let grace = self.state.config.shutdown_grace;
        info!(?grace, "shutting down");
        self.shutdown(grace).await;
        info!("stopped");
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
