//! [`AppState`]: the services one server shares, built once at start-up.
//!
//! This module knows the services (hub, platform, publish auth, live registry, HLS, chat,
//! counters) and none of the drivers. Each driver gets its own narrow context built from
//! these parts (`ingest::Ingest`, `flv::Feeds`, `api::ApiState`, the `Hls` handle for the
//! HLS routes), so what a driver may touch is written in one struct beside it.

use std::sync::Arc;

use onair_chat::ChatService;
use onair_hub::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{PublishAuth, StoreAuth};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::hls::Hls;
use crate::lives::{LiveStream, Lives};
use crate::metrics::Metrics;
use crate::platform::Platform;
use crate::relay::Relay;
use crate::restream::Restreams;
use crate::vod::VodLibrary;
use crate::vod::uploads::{Thumbnailer, Uploads};

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
    pub metrics: Arc<Metrics>,
    /// Tracks every connection task so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// HLS live playlists and replays.
    pub hls: Arc<Hls>,
    /// Every channel's chat room.
    pub chat: Arc<ChatService>,
    /// Resumable uploads of videos.
    pub uploads: Arc<Uploads>,
    /// Catalogue videos played over RTMP, their indexes and shared blocks.
    pub vod: Arc<VodLibrary>,
    /// The live registry across nodes and the edge pulls; `None` on a single node.
    pub relay: Option<Arc<Relay>>,
    /// The link to the other nodes, when `cluster.nats_url` is set.
    pub cluster: Option<Arc<Cluster>>,
    /// The pushes of live channels to their restream destinations.
    pub restreams: Arc<Restreams>,
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
        let cluster = config
            .cluster
            .nats_url
            .clone()
            .map(|url| Cluster::new(&config.cluster, url));
        let chat = crate::chat::service(
            &config,
            platform.clone(),
            hub.clone(),
            lives.clone(),
            cluster.clone().map(|c| c as Arc<dyn onair_chat::ChatBus>),
        );
        // The thumbnail is the HLS side's ffmpeg call, handed to the uploads service so that
        // a service need not import a driver.
        let thumbnailer: Thumbnailer = Arc::new(|dir| {
            Box::pin(async move {
                match crate::hls::catalogue::make_thumbnail(&dir).await {
                    crate::hls::catalogue::Thumbnail::Made => {
                        Some(crate::hls::catalogue::THUMBNAIL.to_owned())
                    }
                    crate::hls::catalogue::Thumbnail::NoFfmpeg => None,
                    crate::hls::catalogue::Thumbnail::Failed(reason) => {
                        tracing::warn!(reason, "no thumbnail for an uploaded video");
                        None
                    }
                }
            })
        });
        let uploads = Uploads::new(
            &config,
            platform.store().clone(),
            thumbnailer,
            tasks.clone(),
        );
        let metrics = Arc::<Metrics>::default();
        let vod = VodLibrary::new(
            &config,
            platform.clone(),
            metrics.clone(),
            tasks.clone(),
            shutdown.clone(),
        );
        let relay = cluster
            .as_ref()
            .zip(config.cluster.nats_url.as_ref())
            .map(|(c, url)| {
                Relay::new(
                    &config.cluster,
                    url.clone(),
                    c.node().to_owned(),
                    hub.clone(),
                    lives.clone(),
                    metrics.clone(),
                    tasks.clone(),
                    shutdown.clone(),
                )
            });
        let restreams = Restreams::new(
            config.restream.clone(),
            hub.clone(),
            platform.store().clone(),
            lives.clone(),
            metrics.clone(),
            tasks.clone(),
            shutdown.clone(),
        );
        Arc::new(AppState {
            restreams,
            vod,
            relay,
            hub,
            chat,
            cluster,
            auth: StoreAuth::new(platform.clone(), config.dev.clone()),
            config,
            platform,
            lives,
            shutdown,
            metrics,
            tasks,
            hls,
            uploads,
        })
    }

    /// Ends the live publish that uses the stream key `jti`, if there is one on this node.
    /// Other nodes (and this one, if the call is missed) end it on their next store check.
    pub fn kick_key(&self, jti: &str) -> bool {
        crate::lives::kick_key(&self.lives, &self.hub, jti)
    }

    /// Every live stream with its figures, busiest first.
    pub fn live_now(&self) -> Vec<LiveStream> {
        self.lives.snapshot(&self.hub)
    }
}
