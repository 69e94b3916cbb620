//! Starting and stopping the whole server: listeners, shared state, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onair_hub::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::PublishAuth;
use crate::config::Config;

/// What every connection shares.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: Config,
    /// The channels.
    pub hub: Arc<Hub>,
    /// Who may publish.
    pub auth: Arc<dyn PublishAuth>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Tracks every connection task so shutdown can wait for them.
    pub tasks: TaskTracker,
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
    /// Binds the listeners and starts serving.
    pub async fn start(
        config: Config,
        auth: Arc<dyn PublishAuth>,
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
        let state = Arc::new(AppState {
            hub: Hub::new(config.hub.hub_config()),
            config,
            auth,
            shutdown: CancellationToken::new(),
            metrics: Metrics::default(),
            tasks: TaskTracker::new(),
        });
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
