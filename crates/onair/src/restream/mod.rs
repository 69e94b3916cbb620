//! Restreaming (issue 14): while a channel is live here, its enabled destinations (another
//! RTMP server, a CDN's ingest) each get a push task that plays the channel from the hub and
//! publishes it there with `onair-client`, reconnecting with back-off; the status of each is
//! kept here for the API.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Restreams`]: which pushes run, starting them when a live starts or a destination is enabled, stopping them when it is disabled or deleted; their status |
//! | `push.rs` | one push: connect, publish, metadata and sequence headers, frames from a keyframe, reconnect; [`push::Timeline`] keeps timestamps moving forward across reconnects |
//!
//! A push subscribes as [`Protocol::Restream`], which the hub counts apart from viewers (no
//! viewer cap, no audience) and treats like any subscriber when it is slow: it skips, so a slow
//! destination only costs itself.

pub mod push;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use onair_client::RtmpUrl;
use onair_hub::{Hub, Protocol};
use onair_store::{RestreamDestination, Store};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use crate::config::RestreamConfig;
use crate::lives::Lives;
use crate::metrics::Metrics;

/// What a destination is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PushState {
    /// Nothing is pushed: the channel is not live, or the destination is disabled.
    Idle,
    /// Connecting and publishing.
    Connecting,
    /// Publishing: frames go out.
    Live,
    /// The last connection failed; the next attempt waits out the back-off.
    Retrying,
    /// The destination refused for good (a wrong key): no more attempts in this live.
    Failed,
}

/// A destination's status, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushStatus {
    /// What it is doing.
    pub state: PushState,
    /// The last error, the key scrubbed out; `None` while nothing failed in this live.
    pub last_error: Option<String>,
    /// Connection attempts that failed in a row.
    pub attempts: u32,
    /// Media bytes sent to the destination in this live.
    pub bytes_sent: u64,
    /// When the current connection started publishing.
    pub live_since: Option<DateTime<Utc>>,
}

impl PushStatus {
    /// The status of a destination with no push running.
    pub fn idle() -> PushStatus {
        PushStatus {
            state: PushState::Idle,
            last_error: None,
            attempts: 0,
            bytes_sent: 0,
            live_since: None,
        }
    }
}

/// What a push task and the API share about one push.
#[derive(Debug)]
pub struct Shared {
    status: Mutex<PushStatus>,
    bytes_sent: AtomicU64,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            status: Mutex::new(PushStatus {
                state: PushState::Connecting,
                ..PushStatus::idle()
            }),
            bytes_sent: AtomicU64::new(0),
        }
    }

    fn update(&self, f: impl FnOnce(&mut PushStatus)) {
        f(&mut self.status.lock());
    }

    fn add_bytes(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> PushStatus {
        let mut status = self.status.lock().clone();
        status.bytes_sent = self.bytes_sent.load(Ordering::Relaxed);
        status
    }
}

struct Running {
    run: u64,
    stop: CancellationToken,
    /// Cancelled when the push's task has ended, its connection closed.
    done: CancellationToken,
    shared: Arc<Shared>,
}

/// The restream service: the pushes running on this node, by destination id.
pub struct Restreams {
    hub: Arc<Hub>,
    store: Store,
    lives: Arc<Lives>,
    metrics: Arc<Metrics>,
    config: RestreamConfig,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    running: Mutex<HashMap<i64, Running>>,
    /// Pushes stopped but maybe still saying goodbye, by destination: a new push of the same
    /// destination waits for its predecessor, or the destination would see two publishes of
    /// one key and refuse the second for good.
    ending: Mutex<HashMap<i64, CancellationToken>>,
    next_run: AtomicU64,
    /// The TLS client for `rtmps://` destinations, made at the first one (reading the
    /// system's roots takes a while); the error says why there is none.
    tls: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl fmt::Debug for Restreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restreams")
            .field("config", &self.config)
            .field("running", &self.running.lock().len())
            .finish_non_exhaustive()
    }
}

/// Why a destination's URL and key do not make an address we can push to. The messages never
/// quote the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Neither `rtmp://` nor `rtmps://`.
    #[error("the URL must start with rtmp:// or rtmps://")]
    Scheme,
    /// Not `scheme://host[:port]/app`.
    #[error("the URL is not rtmp://host[:port]/app: {0}")]
    Shape(String),
}

/// Where a push publishes: the RTMP address with the key as its stream name, and whether the
/// connection is TLS.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address; its `Debug` and `redacted` hide the key.
    pub url: RtmpUrl,
    /// `rtmps://`.
    pub tls: bool,
}

/// Parses a destination's URL (`rtmp://` or `rtmps://host[:port]/app`, no key) and its key
/// into a [`Target`].
pub fn target(url: &str, key: &str) -> Result<Target, TargetError> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or(TargetError::Scheme)?;
    let (tls, default_port) = if scheme.eq_ignore_ascii_case("rtmp") {
        (false, onair_client::DEFAULT_PORT)
    } else if scheme.eq_ignore_ascii_case("rtmps") {
        (true, 443)
    } else {
        return Err(TargetError::Scheme);
    };
    if key.is_empty() {
        return Err(TargetError::Shape("the key is empty".into()));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let mut parsed = RtmpUrl::parse(&format!("rtmp://{rest}/{key}"))
        .map_err(|e| TargetError::Shape(e.to_string()))?;
    if parsed.name == key.trim() && !rest.contains('/') {
        // `rtmp://host/key` has no application: the key was taken for it.
        return Err(TargetError::Shape("the URL has no application".into()));
    }
    let names_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    if tls && !names_port {
        parsed.port = default_port;
    }
    Ok(Target { url: parsed, tls })
}

impl Restreams {
    /// The service; nothing runs until a live starts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: RestreamConfig,
        hub: Arc<Hub>,
        store: Store,
        lives: Arc<Lives>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Restreams> {
        Arc::new(Restreams {
            hub,
            store,
            lives,
            metrics,
            config,
            tasks,
            shutdown,
            running: Mutex::new(HashMap::new()),
            ending: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(1),
            tls: std::sync::OnceLock::new(),
        })
    }

    /// `[restream]`.
    pub fn config(&self) -> &RestreamConfig {
        &self.config
    }

    /// The TLS connector for `rtmps://` destinations: the system's roots and
    /// `restream.ca_file`'s.
    fn tls(&self) -> Result<tokio_rustls::TlsConnector, String> {
        self.tls
            .get_or_init(|| tls_connector(self.config.ca_file.as_deref()))
            .clone()
    }

    /// A publish of `channel` (with a channel row) started here: its enabled destinations are
    /// read off the caller's task and each gets a push. `[dev]` lives have no destinations.
    pub fn publish_started(self: &Arc<Self>, channel: &str, channel_id: Option<i64>) {
        let Some(channel_id) = channel_id else { return };
        let this = self.clone();
        let channel = channel.to_owned();
        let span = info_span!("restream", channel = %channel);
        self.tasks.spawn(
            async move {
                match this.store.restreams_of_channel(channel_id).await {
                    Ok(destinations) => {
                        for d in destinations.into_iter().filter(|d| d.enabled) {
                            this.start(&channel, &d);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read the restream destinations; none started")
                    }
                }
            }
            .instrument(span),
        );
    }

    /// A destination of `channel` was created or changed: whatever push it had stops, and if
    /// it is enabled and the channel is live here, a new one starts with its new settings.
    pub fn destination_changed(self: &Arc<Self>, channel: &str, destination: &RestreamDestination) {
        self.stop(destination.id);
        if destination.enabled && self.lives.started_at(channel).is_some() {
            self.start(channel, destination);
        }
    }

    /// Stops the push of destination `id`, if one runs (disabled, deleted).
    pub fn stop(&self, id: i64) {
        let mut running = self.running.lock();
        if let Some(push) = running.remove(&id) {
            push.stop.cancel();
            self.ending.lock().insert(id, push.done);
        }
        self.note_running(running.len());
    }

    fn note_running(&self, n: usize) {
        self.metrics
            .restream_running
            .store(n as u64, Ordering::Relaxed);
    }

    /// The status of destination `id`: its push's, or idle.
    pub fn status(&self, id: i64) -> PushStatus {
        self.running
            .lock()
            .get(&id)
            .map_or_else(PushStatus::idle, |r| r.shared.snapshot())
    }

    /// Pushes running now, in any state.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }

    fn start(self: &Arc<Self>, channel: &str, destination: &RestreamDestination) {
        let target = match target(&destination.url, &destination.stream_key) {
            Ok(t) => t,
            Err(e) => {
                // The API refuses such URLs; a row written some other way is only reported.
                warn!(destination = destination.id, error = %e, "restream destination unusable");
                return;
            }
        };
        // Subscribed before the check, so a live that ends right after is seen by the push.
        let subscriber = self.hub.subscribe(channel, Protocol::Restream);
        if !subscriber.is_live() {
            return;
        }
        let run = self.next_run.fetch_add(1, Ordering::Relaxed);
        let stop = self.shutdown.child_token();
        let done = CancellationToken::new();
        let shared = Arc::new(Shared::new());
        let predecessor = {
            let mut running = self.running.lock();
            let replaced = running.insert(
                destination.id,
                Running {
                    run,
                    stop: stop.clone(),
                    done: done.clone(),
                    shared: shared.clone(),
                },
            );
            self.note_running(running.len());
            let ending = self.ending.lock().remove(&destination.id);
            replaced
                .map(|old| {
                    old.stop.cancel();
                    old.done
                })
                .or(ending)
        };
        let push = push::Push {
            restreams: self.clone(),
            destination: destination.id,
            run,
            target,
            stop,
            done,
            predecessor,
            shared,
        };
        let span = info_span!(
            "restream",
            channel,
            destination = destination.id,
            name = %destination.name,
        );
        self.tasks.spawn(push.run(subscriber).instrument(span));
    }

    /// A push ended: its entry goes, unless a newer push of the destination replaced it.
    fn finished(&self, destination: i64, run: u64) {
        let mut running = self.running.lock();
        if running.get(&destination).is_some_and(|r| r.run == run) {
            running.remove(&destination);
        }
        self.note_running(running.len());
        self.ending.lock().retain(|_, done| !done.is_cancelled());
    }
}

fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        warn!(error = %e, "a system root certificate could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    let mut total = added;
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("restream.ca_file {}: {e}", path.display()))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        total += added;
    }
    if total == 0 {
        return Err("no trusted root certificates (system or restream.ca_file)".into());
    }
    // The provider is named, as for the server side (`tls.rs`), so no process default matters.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
