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
use crate::tls::Certificates;

/// A server that is running.
#[derive(Debug)]
pub struct RunningServer {
    /// Where the RTMP listener is bound.
    pub rtmp_addr: SocketAddr,
    /// Where the HTTP listener is bound.
    pub http_addr: SocketAddr,
    /// Where the RTMPS listener is bound, when `[tls]` has a certificate.
    pub rtmps_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    /// The certificate RTMPS (and HTTPS) serve, swapped by [`RunningServer::reload`].
    tls: Option<Arc<Certificates>>,
    /// The RTMP connection caps, changed by [`RunningServer::reload`].
    connection_limits: Arc<crate::ingest::ConnectionLimits>,
    http_limits: crate::http::connections::SharedLimits,
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
    /// The certificate or key of `[tls]` could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// The listeners, bound and not yet serving: what a start can fail at is done before the
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
    /// The RTMPS listener and its certificate, when `[tls]` has one.
    rtmps: Option<(tokio::net::TcpListener, Arc<Certificates>)>,
    /// Where the RTMPS listener is bound.
    pub rtmps_addr: Option<SocketAddr>,
}

impl Listeners {
    /// Binds `rtmp.listen`, `http.listen` and, with a certificate, `tls.rtmps_listen`
    /// (loading the certificate: a start fails on a bad one).
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
            Ok::<_, StartError>((listener, bound))
        };
        let (rtmp, rtmp_addr) = bind(config.rtmp.listen, "rtmp")?;
        let (http, http_addr) = bind(config.http.listen, "http")?;
        let (rtmps, rtmps_addr) = match config.tls.files() {
            Some((certificate, private_key)) => {
                let certificates = Arc::new(Certificates::load(certificate, private_key)?);
                let (listener, addr) = bind(config.tls.rtmps_listen, "rtmps")?;
                (Some((listener, certificates)), Some(addr))
            }
            None => (None, None),
        };
        Ok(Listeners {
            rtmp,
            http,
            rtmp_addr,
            http_addr,
            rtmps,
            rtmps_addr,
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
            rtmps,
            rtmps_addr,
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
        let (uploads, tasks) = (state.uploads.clone(), state.tasks.clone());
        state.tasks.spawn(async move {
            hls.recover().await;
            // After recovery, which removes the temporaries of imports a crash cut short: an
            // upload's import started before it could lose its own.
            tasks.spawn(uploads.run(shutdown.clone()));
            crate::hls::retention::run(hls, shutdown).await;
        });
        state
            .tasks
            .spawn(state.chat.clone().run(state.shutdown.clone()));
        if let Some(cluster) = &state.cluster {
            info!(
                node = cluster.node(),
                "cluster: joining the other nodes over NATS"
            );
            state.tasks.spawn(
                cluster
                    .clone()
                    .run(state.chat.clone(), state.shutdown.clone()),
            );
        }
        if let Some(relay) = &state.relay {
            relay.start(http_addr);
        }
        let connection_limits = crate::ingest::ConnectionLimits::of(&state.config.rtmp);
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
            connection_limits: connection_limits.clone(),
            vod: state.vod.clone(),
            relay: state.relay.clone(),
            restreams: state.restreams.clone(),
        });
        state
            .tasks
            .spawn(crate::ingest::serve(ingest.clone(), rtmp, None));
        let tls = rtmps.map(|(listener, certificates)| {
            state.tasks.spawn(crate::ingest::serve(
                ingest,
                listener,
                Some(certificates.clone()),
            ));
            certificates
        });
        let https = tls.clone().filter(|_| state.config.tls.https);
        let http_limits = Arc::new(parking_lot::RwLock::new(
            crate::http::connections::Limits::new(
                &state.config.http,
                state.config.hub.write_timeout,
            ),
        ));
        let scheme = if https.is_some() { "https" } else { "http" };
        state.tasks.spawn(crate::http::serve(
            &state,
            http,
            descriptors,
            https,
            http_limits.clone(),
        ));
        match rtmps_addr {
            Some(rtmps_addr) => info!(%rtmp_addr, %http_addr, %rtmps_addr, scheme, "listening"),
            None => info!(%rtmp_addr, %http_addr, scheme, "listening"),
        }
        RunningServer {
            rtmp_addr,
            http_addr,
            rtmps_addr,
            state,
            tls,
            connection_limits,
            http_limits,
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

    /// Applies what can change at run time from `new` (the configuration as loaded again,
    /// e.g. on SIGHUP): the certificate is re-read from `new`'s files and swapped in, so new
    /// connections get it and connections already open keep theirs. The log filter is the
    /// caller's (the subscriber belongs to the binary). The viewer and connection caps apply
    /// to whoever is admitted next, the HTTP timeouts to every connection's next deadline. Every other option that differs from the running
    /// configuration is named in the answer as needing a restart.
    pub fn reload(&self, new: &Config) -> Reload {
        let tls = match (&self.tls, new.tls.files()) {
            (Some(certificates), Some(files)) => Some(certificates.reload(Some(files))),
            _ => None,
        };
        let live_keys: &[&str] = if self.tls.is_some() && new.tls.files().is_some() {
            &["log.level", "tls.certificate", "tls.private_key"]
        } else {
            &["log.level"]
        };
        // The caps apply to connections and viewers admitted from now on.
        self.state
            .hub
            .set_max_viewers(new.hub.max_viewers_per_channel);
        self.connection_limits.set(&new.rtmp);
        self.http_limits.write().set(&new.http);
        let needs_restart = crate::config::options::changed_keys(&self.state.config, new)
            .into_iter()
            .filter(|k| !live_keys.contains(k) && !RELOADED_LIMITS.contains(k))
            .collect();
        Reload { tls, needs_restart }
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

    /// Runs until SIGINT or SIGTERM, then shuts down. On SIGHUP, calls `on_hangup` (which
    /// reloads the configuration, see [`RunningServer::reload`]) and goes on.
    pub async fn run_until_signal(self, mut on_hangup: impl FnMut(&RunningServer)) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(mut hangup) => {
                    let stop = wait_for_signal();
                    tokio::pin!(stop);
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            Some(()) = hangup.recv() => on_hangup(&self),
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGHUP; a reload takes a restart");
                    wait_for_signal().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut on_hangup;
            wait_for_signal().await;
        }
        let grace = self.state.config.shutdown_grace;
        info!(?grace, "shutting down");
        self.shutdown(grace).await;
        info!("stopped");
    }
}

/// The limits [`RunningServer::reload`] applies at once.
const RELOADED_LIMITS: [&str; 8] = [
    "hub.max_viewers_per_channel",
    "rtmp.max_connections",
    "rtmp.max_connections_per_address",
    "http.max_connections",
    "http.max_connections_per_address",
    "http.header_timeout",
    "http.body_timeout",
    "http.idle_timeout",
];

/// What [`RunningServer::reload`] did.
#[derive(Debug)]
#[must_use]
pub struct Reload {
    /// The certificate reload's outcome; `None` when TLS was off before or after (turning
    /// it on or off takes a restart, and is listed in `needs_restart`).
    pub tls: Option<Result<(), crate::tls::TlsError>>,
    /// Options that changed but take effect only at the next start.
    pub needs_restart: Vec<&'static str>,
}

impl Reload {
    /// Logs the outcome: what was reloaded, what failed and was kept, what waits for a
    /// restart.
    pub fn log(&self) {
        match &self.tls {
            Some(Ok(())) => info!("reloaded the tls certificate; new connections get it"),
            Some(Err(e)) => {
                warn!(error = %e, "tls certificate not reloaded; keeping the one in use")
            }
            None => {}
        }
        if !self.needs_restart.is_empty() {
            warn!(
                options = %self.needs_restart.join(", "),
                "changed options take effect only after a restart"
            );
        }
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
