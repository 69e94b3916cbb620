//! Several nodes as one platform (issue 14, the media half): which node holds which live
//! channel, and edges that pull a channel from its origin for their own viewers.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`Relay`]: the announce loop (this node's lives into the registry) and the table of pulls |
//! | `registry.rs` | [`Registry`]: the JetStream KV bucket `cluster.lives_bucket`, one [`Holder`] per live channel, expiring after `cluster.lease` |
//! | `pull.rs` | one pull: HTTP-FLV from the origin (with the relay token) → `FlvDemuxer` → this node's hub as the channel's publisher |
//!
//! The pull is a publisher of the local hub like an RTMP ingest, so an edge's viewers get the
//! GOP cache, the slow-viewer policy and encode-once with nothing written for edges. A single
//! node (`cluster.nats_url` empty) builds no [`Relay`] and runs no NATS code.

mod pull;
mod registry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_hub::Hub;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

pub use registry::{Holder, Registry, RegistryError};

use crate::config::ClusterConfig;
use crate::lives::Lives;
use crate::metrics::Metrics;
use crate::secret::SecretText;

/// The request header an edge's pull carries the relay token in.
pub const RELAY_HEADER: &str = "x-onair-relay";

/// How long a viewer on an edge waits for the first pull of its channel to get a feed.
const START_WAIT: Duration = Duration::from_secs(5);

/// This node's name and address in the registry, known once the HTTP listener is bound.
#[derive(Debug, Clone)]
struct Identity {
    node: String,
    http: String,
}

/// Where a pull stands, for the viewers waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    /// Looking up the origin or connecting to it.
    Connecting,
    /// The feed is in the local hub.
    Live,
    /// No node holds the channel, or its feed ended; the pull waits for it to come back
    /// while viewers stay (and `cluster.edge_linger` after).
    Offline,
}

#[derive(Debug)]
struct PullEntry {
    id: u64,
    state: watch::Receiver<PullState>,
}

/// The cluster's media side of one node.
#[derive(Debug)]
pub struct Relay {
    config: ClusterConfig,
    nats_url: SecretText,
    node_id: String,
    hub: Arc<Hub>,
    lives: Arc<Lives>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    identity: OnceLock<Identity>,
    registry: OnceLock<Registry>,
    pulls: Mutex<HashMap<String, PullEntry>>,
    next_pull: AtomicU64,
}

impl Relay {
    /// The relay of a node in a cluster (a single node builds none), named `node_id` in the
    /// registry, as in the rest of the cluster. Nothing runs until [`Relay::start`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &ClusterConfig,
        nats_url: SecretText,
        node_id: String,
        hub: Arc<Hub>,
        lives: Arc<Lives>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            config: config.clone(),
            nats_url,
            node_id,
            hub,
            lives,
            metrics,
            tasks,
            shutdown,
            identity: OnceLock::new(),
            registry: OnceLock::new(),
            pulls: Mutex::new(HashMap::new()),
            next_pull: AtomicU64::new(0),
        })
    }

    /// Connects to NATS (retrying until it answers) and announces this node's lives from
    /// then on. `http_addr` is where the HTTP listener is bound, the address other nodes are
    /// given when `cluster.advertise_http` is empty.
    pub fn start(self: &Arc<Self>, http_addr: SocketAddr) {
        let http = if self.config.advertise_http.is_empty() {
            format!("http://{http_addr}")
        } else {
            self.config.advertise_http.trim_end_matches('/').to_owned()
        };
        let node = self.node_id.clone();
        info!(
            node,
            http, "cluster media: this node's address for the edges"
        );
        let _ = self.identity.set(Identity { node, http });
        let relay = self.clone();
        self.tasks
            .spawn(relay.run().instrument(info_span!("cluster")));
    }

    /// This node's id in the registry.
    pub fn node_id(&self) -> &str {
        self.identity.get().map_or("", |i| i.node.as_str())
    }

    /// Whether `token` is the cluster's relay token (never true when none is set).
    pub fn is_relay_token(&self, token: &[u8]) -> bool {
        self.config
            .relay_token
            .as_ref()
            .is_some_and(|t| !t.expose().is_empty() && t.matches(token))
    }

    /// The registry, once NATS has been reached.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.get()
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        let registry = loop {
            match Registry::open(&self.nats_url, &self.config).await {
                Ok(r) => break r,
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "live registry unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        info!(bucket = self.config.lives_bucket, "live registry connected");
        let _ = self.registry.set(registry.clone());
        self.announce(&registry).await;
    }

    /// Mirrors this node's publishes into the registry: a put at each start and every third
    /// of the lease while live, a delete at each end and at shutdown.
    async fn announce(&self, registry: &Registry) {
        let Some(me) = self.identity.get() else {
            return;
        };
        let mut announced: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut tick = tokio::time::interval(self.config.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.lives.changed() => {}
                _ = self.shutdown.cancelled() => break,
            }
            let now: HashMap<String, DateTime<Utc>> = self.lives.channels().into_iter().collect();
            for (channel, started_at) in &now {
                let holder = Holder {
                    node: me.node.clone(),
                    http: me.http.clone(),
                    started_at: *started_at,
                };
                if let Err(e) = registry.put(channel, &holder).await {
                    warn!(channel, error = %e, "cannot refresh the live registry");
                }
            }
            for channel in announced.keys().filter(|c| !now.contains_key(*c)) {
                if let Err(e) = registry.remove(channel).await {
                    // The entry still expires after the lease.
                    warn!(channel, error = %e, "cannot remove a live from the registry");
                }
            }
            announced = now;
        }
        for channel in announced.keys() {
            let _ = registry.remove(channel).await;
        }
    }

    /// For a viewer of `channel` on this node while it is not live here: starts the one pull
    /// of the channel from the node holding it, if the registry names another node (or
    /// joins the pull already running). `None` when no other node holds it.
    pub async fn want(self: &Arc<Self>, channel: &str) -> Option<watch::Receiver<PullState>> {
        if let Some(p) = self.pulls.lock().get(channel) {
            return Some(p.state.clone());
        }
        let registry = self.registry.get()?;
        let holder = match registry.holder(channel).await {
            Ok(h) => h?,
            Err(e) => {
                warn!(channel, error = %e, "cannot read the live registry");
                return None;
            }
        };
        if holder.node == self.node_id() {
            return None;
        }
        let mut pulls = self.pulls.lock();
        if let Some(p) = pulls.get(channel) {
            return Some(p.state.clone());
        }
        let id = self.next_pull.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(PullState::Connecting);
        pulls.insert(
            channel.to_owned(),
            PullEntry {
                id,
                state: rx.clone(),
            },
        );
        drop(pulls);
        info!(channel, origin = holder.node, "edge pull started");
        let relay = self.clone();
        let span = info_span!("pull", channel);
        self.tasks
            .spawn(pull::run(relay, channel.to_owned(), id, tx, holder).instrument(span));
        Some(rx)
    }

    /// Like [`Relay::want`], then waits (a few seconds at most) for the feed: whether the
    /// channel is live on this node now.
    pub async fn await_remote(self: &Arc<Self>, channel: &str) -> bool {
        let Some(mut state) = self.want(channel).await else {
            return self.hub.is_live(channel);
        };
        let ready = tokio::time::timeout(
            START_WAIT,
            state.wait_for(|s| *s == PullState::Live || self.hub.is_live(channel)),
        )
        .await;
        if !matches!(ready, Ok(Ok(_))) {
            debug!(channel, "the pull got no feed in time");
        }
        self.hub.is_live(channel)
    }

    /// The channels this node pulls now.
    pub fn pulled_channels(&self) -> Vec<String> {
        self.pulls.lock().keys().cloned().collect()
    }

    fn forget_pull(&self, channel: &str, id: u64) {
        let mut pulls = self.pulls.lock();
        if pulls.get(channel).is_some_and(|p| p.id == id) {
            pulls.remove(channel);
        }
    }
}
