//! Starting and stopping the whole server: listeners, the background tasks, each driver's
//! context built from the [`AppState`], and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use onair_hub::Hub;
use tracing::{info, warn};

use crate::config::Config;
use crate::ingest::Ingest;
use crate::platform::Platform;
use crate::state::AppState;

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

/// Both listeners, bound and not yet serving: what a start can fail at is done before the
/// first start creates anything (its admin password is printed once, so it must not be
/// created by a start that then fails).
#[derive(Debug)]
pub struct Listeners {
    rtmp: tokio::net::TcpListener,
    http: tokio::net::TcpListener,
    /// Where the RTMP listener is bound.
    pub rtmp_addr: SocketAddr,
    /// Where the HTTP listener is bound.
    pub http_addr: SocketAddr,
}

impl Listeners {
    /// Binds `rtmp.listen` and `http.listen`.
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        let bind = |addr: SocketAddr, what: &'static str| {
            let listener = crate::net::listen(addr).map_err(|source| StartError::Bind {
                addr,
                what,
                source,
            })?;
            let bound =
                listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, what, source })?;
            Ok((listener, bound))
        };
        let (rtmp, rtmp_addr) = bind(config.rtmp.listen, "rtmp")?;
        let (http, http_addr) = bind(config.http.listen, "http")?;
        Ok(Listeners {
            rtmp,
            http,
            rtmp_addr,
            http_addr,
        })
    }
}

impl RunningServer {
    /// Binds the listeners and starts serving. Publishes are authorised by the keys in
    /// `platform`'s store, then by the `[dev]` keys.
    pub async fn start(
        config: Config,
        platform: Arc<Platform>,
    ) -> Result<RunningServer, StartError> {
        let listeners = Listeners::bind(&config)?;
        Ok(Self::serve(config, platform, listeners))
    }

    /// Starts serving on listeners already bound.
    pub fn serve(config: Config, platform: Arc<Platform>, listeners: Listeners) -> RunningServer {
        let Listeners {
            rtmp,
            http,
            rtmp_addr,
            http_addr,
        } = listeners;
        let descriptors =
            crate::descriptors::Descriptors::at_start(config.http.reserved_descriptors);
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
        let ingest = Arc::new(Ingest {
            rtmp: state.config.rtmp.clone(),
            hub_config: state.config.hub.clone(),
            hub: state.hub.clone(),
            auth: state.auth.clone(),
            lives: state.lives.clone(),
            store: state.platform.store().clone(),
            hls: state.hls.clone(),
            metrics: state.metrics.clone(),
            shutdown: state.shutdown.clone(),
            tasks: state.tasks.clone(),
            descriptors: descriptors.clone(),
        });
        state.tasks.spawn(crate::ingest::serve(ingest, rtmp));
        state
            .tasks
            .spawn(crate::http::serve(&state, http, descriptors));
        info!(%rtmp_addr, %http_addr, "listening");
        RunningServer {
            rtmp_addr,
            http_addr,
            state,
        }
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
