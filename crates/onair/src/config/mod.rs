//! Configuration: a TOML file, then `ONAIR_*` environment overrides, parsed at start-up into
//! typed values. Every option has a working default, so `onair` runs with no file at all.
//!
//! An environment variable `ONAIR_<SECTION>_<KEY>` sets `<key>` in `[<section>]`
//! (`ONAIR_RTMP_CHUNK_SIZE=8192`, `ONAIR_HUB_GOP_CACHE=false`); `ONAIR_<KEY>` sets a
//! top-level key (`ONAIR_SHUTDOWN_GRACE=10s`). Values are read as TOML where they parse
//! (numbers, booleans, arrays) and as strings otherwise.
//!
//! Which other `ONAIR_*` names are refused (the rule is in [`env`]): a name with a known
//! section and a key that section lacks (`ONAIR_RTMP_CHUNK_SISE`) stops the start, naming the
//! closest key; any other name that is no key (`ONAIR_BIN`, `ONAIR_TEST_POSTGRES`) is ignored
//! and reported in [`Loaded::ignored`], which the server logs once as a warning. `ONAIR_CONFIG`
//! (the file) and `ONAIR_LOG` (the log filter) are read elsewhere.
//!
//! Every error is one line naming what to fix: the file with the line and column
//! (`onair.toml:12:14`) and the key, or the environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::{SecretText, StreamKey};

mod duration;
pub mod env;
pub mod options;
pub mod source;

pub use self::duration::{format_duration, parse_duration};
pub use self::env::IgnoredVar;
pub use self::options::{example_toml, reference};
pub use self::source::Location;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long shutdown waits for connections to finish before it closes them.
    #[serde(with = "duration::serde_required")]
    pub shutdown_grace: Duration,
    /// Threads that run connections (0: one per core the process may run on).
    pub worker_threads: usize,
    /// RTMP ingest and playback.
    pub rtmp: RtmpConfig,
    /// HTTP: HTTP-FLV, WebSocket-FLV, health and metrics.
    pub http: HttpConfig,
    /// The in-process hub.
    pub hub: HubSection,
    /// Publishing without accounts (until stream keys come from the store).
    pub dev: DevConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where accounts, channels and keys are kept.
    pub storage: StorageConfig,
    /// Accounts, logins and stream keys.
    pub auth: AuthConfig,
    /// HLS live playlists and replays.
    pub hls: HlsConfig,
    /// Videos: uploads, and RTMP playback of catalogue videos (`rtmp://host/vod/{video_id}`).
    pub vod: VodConfig,
    /// Live chat, danmaku, likes and gifts.
    pub chat: ChatSection,
    /// RTMPS, and HTTPS when asked for: the certificate and the TLS listener.
    pub tls: TlsConfig,
    /// Several nodes over one store and NATS; off by default (one node, no NATS).
    pub cluster: ClusterConfig,
    /// Pushing a channel's live to other RTMP servers.
    pub restream: RestreamConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shutdown_grace: Duration::from_secs(5),
            worker_threads: 0,
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            hub: HubSection::default(),
            dev: DevConfig::default(),
            log: LogConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
            hls: HlsConfig::default(),
            vod: VodConfig::default(),
            chat: ChatSection::default(),
            tls: TlsConfig::default(),
            cluster: ClusterConfig::default(),
            restream: RestreamConfig::default(),
        }
    }
}

/// `[restream]`: each channel's restream destinations, where its lives are pushed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RestreamConfig {
    /// Destinations one channel may have.
    pub max_per_channel: u32,
    /// The longest wait between two attempts to reach a destination that failed.
    #[serde(with = "duration::serde_required")]
    pub max_backoff: Duration,
    /// A PEM file of CA certificates trusted for `rtmps://` destinations besides the
    /// system's (a private CDN's own CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Whether a destination may be on a loopback, private, link-local or shared address;
    /// off, a streamer cannot make the server connect into its own network.
    pub allow_private_addresses: bool,
}

impl Default for RestreamConfig {
    fn default() -> Self {
        RestreamConfig {
            max_per_channel: 5,
            max_backoff: Duration::from_secs(30),
            ca_file: None,
            allow_private_addresses: false,
        }
    }
}

/// `[cluster]`: several nodes sharing one database and one NATS server act as one platform
/// (chat, moderation, settings and audience; media stays on the node it was published to).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `nats://host:4222` of the NATS server the nodes share; unset: a single node, and no
    /// cluster code runs. May carry credentials, so it is a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<SecretText>,
    /// This node's name among the others; unset: the host name and a random suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The first part of every NATS subject, so several platforms can share one NATS.
    pub subject_prefix: String,
    /// How long a chat message numbered past a gap waits for the missing ones before they
    /// are read from the database.
    #[serde(with = "duration::serde_required")]
    pub reorder_hold: Duration,
    /// The base URL other nodes reach this node's HTTP listener on (`http://10.0.0.5:8080`);
    /// empty: `http://` and the address `http.listen` bound.
    pub advertise_http: String,
    /// The JetStream KV bucket holding which node has which channel live.
    pub lives_bucket: String,
    /// How long a node's claim on a live channel lasts without being refreshed: a crashed
    /// origin's channels go offline on the edges within it.
    #[serde(with = "duration::serde_required")]
    pub lease: Duration,
    /// How long an edge keeps pulling a channel after its last viewer left.
    #[serde(with = "duration::serde_required")]
    pub edge_linger: Duration,
    /// The token an edge shows the origin to be counted as a relay, not a viewer (same on
    /// every node); unset: pulls count as viewers. Never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_token: Option<SecretText>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: None,
            node_id: None,
            subject_prefix: "onair".into(),
            reorder_hold: onair_chat::ChatConfig::default().reorder_hold,
            advertise_http: String::new(),
            lives_bucket: "onair_lives".into(),
            lease: Duration::from_secs(3),
            edge_linger: Duration::from_secs(10),
            relay_token: None,
        }
    }
}

/// `[chat]`: the limits of every channel's chat room.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSection {
    /// Messages a client gets when it joins a room.
    pub history: u32,
    /// Longest chat line or danmaku, in characters.
    pub max_message_chars: usize,
    /// Messages one user may send per `user_window`.
    pub user_messages: u32,
    /// The window of `user_messages`.
    #[serde(with = "duration::serde_required")]
    pub user_window: Duration,
    /// Frames one connection may send per second (the flood guard).
    pub flood_frames_per_second: u32,
    /// Default slow mode: one message per user per this interval (unset: off).
    #[serde(with = "duration::optional", skip_serializing_if = "Option::is_none")]
    pub slow_mode: Option<Duration>,
    /// Frames queued for one client before it is dropped as too slow.
    pub client_queue: usize,
    /// The longest a busy room gathers broadcasts before each member gets them in one write
    /// (`0ms`: never batch).
    #[serde(with = "duration::serde_required")]
    pub broadcast_window: Duration,
    /// Rooms with fewer members send every broadcast at once.
    pub batch_min_members: usize,
    /// Member writes a second a busy room aims at; its window is members ÷ this, at most
    /// `broadcast_window` (0: always the whole window).
    pub batch_writes_per_second: u64,
    /// How often the audience is sent to every room.
    #[serde(with = "duration::serde_required")]
    pub viewers_interval: Duration,
    /// How often an idle client is pinged.
    #[serde(with = "duration::serde_required")]
    pub ping_interval: Duration,
    /// A client silent for this long (no frame, no pong) is dropped.
    #[serde(with = "duration::serde_required")]
    pub idle_timeout: Duration,
}

impl Default for ChatSection {
    fn default() -> Self {
        let d = onair_chat::ChatConfig::default();
        ChatSection {
            history: d.history,
            max_message_chars: d.max_message_chars,
            user_messages: d.user_messages,
            user_window: d.user_window,
            flood_frames_per_second: d.flood_frames,
            slow_mode: d.slow_mode,
            client_queue: d.client_queue,
            broadcast_window: d.broadcast_window,
            batch_min_members: d.batch_min_members,
            batch_writes_per_second: d.batch_writes_per_second,
            viewers_interval: d.viewers_interval,
            ping_interval: d.ping_interval,
            idle_timeout: d.idle_timeout,
        }
    }
}

impl ChatSection {
    /// The chat crate's configuration.
    pub fn chat_config(&self) -> onair_chat::ChatConfig {
        onair_chat::ChatConfig {
            history: self.history,
            max_message_chars: self.max_message_chars,
            user_messages: self.user_messages,
            user_window: self.user_window,
            flood_frames: self.flood_frames_per_second,
            flood_window: Duration::from_secs(1),
            slow_mode: self.slow_mode,
            client_queue: self.client_queue,
            broadcast_window: self.broadcast_window,
            batch_min_members: self.batch_min_members,
            batch_writes_per_second: self.batch_writes_per_second,
            viewers_interval: self.viewers_interval,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            ..onair_chat::ChatConfig::default()
        }
    }
}

/// `[rtmp]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address the RTMP listener binds.
    pub listen: SocketAddr,
    /// The application name publishers and players use (`rtmp://host/{app}/…`).
    pub app: String,
    /// Chunk size we send with (RTMP §5.4.1); 4096 or more saves header bytes on video.
    pub chunk_size: u32,
    /// Window acknowledgement size we ask peers to use.
    pub window_ack_size: u32,
    /// Largest message a peer may send; the protocol allows 16 MiB − 1.
    pub max_message_size: u32,
    /// A connection that has not finished the handshake and sent `connect` within this is dropped.
    #[serde(with = "duration::serde_required")]
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is dropped.
    #[serde(with = "duration::serde_required")]
    pub idle_timeout: Duration,
    /// Interval of the ping heartbeat we send.
    #[serde(with = "duration::serde_required")]
    pub ping_interval: Duration,
    /// The server URL publishers are told to use (`rtmp://live.example.com/live`), beside
    /// every issued key and in the first-start message. Unset: `rtmp://{host}[:{port}]/{app}`
    /// from `listen`, `localhost` for an unspecified address. Never taken from a request's
    /// `Host` header, which the client writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// RTMP connections open at once (0: only the descriptor budget bounds them); past it a
    /// newcomer is closed at accept.
    pub max_connections: usize,
    /// RTMP connections open at once from one address (an IPv6 client: its /64; 0: no cap).
    pub max_connections_per_address: usize,
}

impl RtmpConfig {
    /// The URL publishers use: [`RtmpConfig::public_url`], or one made from `listen`.
    pub fn publish_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let ip = self.listen.ip();
        let host = if ip.is_unspecified() {
            "localhost".to_owned()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        match self.listen.port() {
            1935 => format!("rtmp://{host}/{}", self.app),
            port => format!("rtmp://{host}:{port}/{}", self.app),
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: "0.0.0.0:1935".parse().expect("literal address"),
            app: "live".into(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_message_size: 0xFF_FFFF,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            public_url: None,
            max_connections: 0,
            max_connections_per_address: 0,
        }
    }
}

/// `[tls]`: one certificate for RTMPS and, opt-in, HTTPS. With no certificate nothing
/// listens for TLS.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's own certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    /// Address the RTMPS listener binds, when a certificate is set.
    pub rtmps_listen: SocketAddr,
    /// Serve the HTTP listener as HTTPS (TLS only) with the same certificate.
    pub https: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            private_key: None,
            rtmps_listen: SocketAddr::from(([0, 0, 0, 0], 1936)),
            https: false,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.certificate.as_deref().zip(self.private_key.as_deref())
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Origins allowed to fetch streams from a page (`["*"]` for any).
    pub cors_origins: Vec<String>,
    /// A request's head must be complete this long after its first byte.
    #[serde(with = "duration::serde_required")]
    pub header_timeout: Duration,
    /// A request's body must arrive in full this long after its head (else 408).
    #[serde(with = "duration::serde_required")]
    pub body_timeout: Duration,
    /// A connection with no request for this long is closed (streams are never cut).
    #[serde(with = "duration::serde_required")]
    pub idle_timeout: Duration,
    /// HTTP connections open at once; past it the longest-idle one is closed, or, with none
    /// idle, a newcomer is answered 503.
    pub max_connections: usize,
    /// HTTP connections open at once from one client address (an IPv6 client: its /64);
    /// past it, 503.
    pub max_connections_per_address: usize,
    /// Open-file descriptors kept free of connections (HTTP and RTMP) for recordings, the
    /// database and served files.
    pub reserved_descriptors: usize,
    /// A bearer token `/metrics` asks for (`Authorization: Bearer …`); unset: open to anyone
    /// who reaches the port. Never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<SecretText>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".parse().expect("literal address"),
            cors_origins: vec!["*".into()],
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
            max_connections_per_address: 256,
            reserved_descriptors: 256,
            metrics_token: None,
        }
    }
}

/// `[hub]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HubSection {
    /// Keep the frames since the last keyframe so new viewers start at once.
    pub gop_cache: bool,
    /// A viewer further behind the live edge than this skips to the newest keyframe.
    #[serde(with = "duration::serde_required")]
    pub max_lag: Duration,
    /// A viewer further behind than this many bytes skips to the newest keyframe.
    pub max_lag_bytes: usize,
    /// A viewer that must skip this many times within 30 s of media is disconnected.
    pub max_skips: u32,
    /// Most bytes one channel keeps for its GOP cache and lagging viewers.
    pub max_channel_bytes: usize,
    /// The latency budget of a write to viewers: on a busy core frames are announced in
    /// batches, none held longer than this (the old key `max_audio_hold` is still read).
    #[serde(with = "duration::serde_required", alias = "max_audio_hold")]
    pub max_write_delay: Duration,
    /// A second publisher to a live channel takes over (true) or is refused (false).
    pub takeover: bool,
    /// How long viewers stay connected after the publisher leaves, waiting for it to return.
    #[serde(with = "duration::serde_required")]
    pub republish_grace: Duration,
    /// How long an RTMP viewer of a channel that is not live waits for a publisher.
    #[serde(with = "duration::serde_required")]
    pub wait_for_publisher: Duration,
    /// A viewer whose connection accepts no data for this long is disconnected.
    #[serde(with = "duration::serde_required")]
    pub write_timeout: Duration,
    /// Viewers one channel takes at once over RTMP, HTTP-FLV and WS-FLV (0: no cap); past
    /// it RTMP play fails with `NetStream.Play.Failed`, the FLV feeds answer 503.
    pub max_viewers_per_channel: usize,
}

impl Default for HubSection {
    fn default() -> Self {
        let hub = onair_hub::HubConfig::default();
        HubSection {
            gop_cache: hub.gop_cache,
            max_lag: hub.max_lag,
            max_lag_bytes: hub.max_lag_bytes,
            max_skips: hub.max_skips,
            max_channel_bytes: hub.max_channel_bytes,
            max_write_delay: hub.max_write_delay,
            takeover: false,
            republish_grace: Duration::from_secs(10),
            wait_for_publisher: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_viewers_per_channel: 0,
        }
    }
}

impl HubSection {
    /// The hub's own settings.
    pub fn hub_config(&self) -> onair_hub::HubConfig {
        onair_hub::HubConfig {
            gop_cache: self.gop_cache,
            max_lag: self.max_lag,
            max_lag_bytes: self.max_lag_bytes,
            max_skips: self.max_skips,
            max_channel_bytes: self.max_channel_bytes,
            max_write_delay: self.max_write_delay,
            max_viewers: self.max_viewers_per_channel,
            ..onair_hub::HubConfig::default()
        }
    }
}

/// `[dev]`: publishing before accounts exist.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DevConfig {
    /// Accept any publish, using the publish name as the channel. Never use in production.
    pub open: bool,
    /// Static stream keys: `[[dev.keys]] channel = "demo", key = "…"`.
    pub keys: Vec<DevKey>,
}

/// One static stream key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DevKey {
    /// The channel the key publishes to.
    pub channel: String,
    /// The key; never logged.
    pub key: StreamKey,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file; unset means the
    /// embedded SQLite file under `data_dir`. `DATABASE_URL` sets it too. Never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<SecretText>,
    /// Directory for the embedded database (and, later, recordings).
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database_url: None,
            data_dir: PathBuf::from("data"),
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The secret stream keys and access tokens are signed with (at least 32 bytes). Unset: one
    /// is generated on first start and kept in the database, so keys survive restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretText>,
    /// Anyone may create a viewer account with `POST /api/v1/auth/register`.
    pub registration: bool,
    /// How long an access token from `/api/v1/auth/login` is valid.
    #[serde(with = "duration::serde_required")]
    pub access_token_ttl: Duration,
    /// How long a stream key is valid after it is issued; unset means until revoked.
    #[serde(with = "duration::optional", skip_serializing_if = "Option::is_none")]
    pub stream_key_ttl: Option<Duration>,
    /// Login attempts allowed per minute from one address, and for one account from one
    /// address.
    pub login_attempts_per_minute: u32,
    /// On first start with an empty database, create an admin, a demo channel and a key, and
    /// print them once.
    pub bootstrap: bool,
    /// Memory of one password hash in KiB (Argon2id's `m`). Each hashing thread holds this
    /// much, reused; a hash stored at another cost is redone at this one on its next login.
    pub password_hash_kib: u32,
    /// Passes over that memory (Argon2id's `t`).
    pub password_hash_passes: u32,
    /// Password hashes computed at once (0: one per core).
    pub password_hash_threads: usize,
    /// How long a login waits for a hashing thread before it is answered 503.
    #[serde(with = "duration::serde_required")]
    pub password_hash_wait: Duration,
}

impl AuthConfig {
    /// The cost new password hashes are made at.
    pub fn hash_cost(&self) -> onair_auth::HashCost {
        onair_auth::HashCost {
            memory_kib: self.password_hash_kib,
            passes: self.password_hash_passes,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: None,
            registration: false,
            access_token_ttl: Duration::from_secs(3600),
            stream_key_ttl: None,
            login_attempts_per_minute: 10,
            bootstrap: true,
            password_hash_kib: onair_auth::HashCost::default().memory_kib,
            password_hash_passes: onair_auth::HashCost::default().passes,
            password_hash_threads: 0,
            password_hash_wait: Duration::from_secs(5),
        }
    }
}

/// `[hls]`: every live channel is also served as HLS, and each live is kept as a replay.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Segment live channels into HLS at all.
    pub enabled: bool,
    /// Segments are cut at the first keyframe after this much media.
    #[serde(with = "duration::serde_required")]
    pub target_duration: Duration,
    /// Segments listed in the live playlist (`/live/{channel}/index.m3u8`).
    pub live_window: usize,
    /// Where segments and playlists are written; unset means `recordings` under
    /// `storage.data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recordings_dir: Option<PathBuf>,
    /// Replays older than this are deleted (unset: kept), unless an admin set a policy.
    #[serde(with = "duration::optional", skip_serializing_if = "Option::is_none")]
    pub retention_max_age: Option<Duration>,
    /// The oldest replays of a channel are deleted while its replays take more bytes than
    /// this (unset: no limit), unless an admin set a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_max_bytes: Option<u64>,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            enabled: true,
            target_duration: Duration::from_secs(2),
            live_window: 6,
            recordings_dir: None,
            retention_max_age: None,
            retention_max_bytes: None,
        }
    }
}

/// `[vod]`: videos that are not lives: uploads (tus, `/api/v1/uploads`) and RTMP playback of
/// catalogue videos from their `media.flv`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VodConfig {
    /// The largest file one upload may be (`Tus-Max-Size`).
    pub max_upload_bytes: u64,
    /// An upload no byte reached for this long is removed, with what it received; a
    /// finished one's outcome stays readable this long.
    #[serde(with = "duration::serde_required")]
    pub upload_expiry: Duration,
    /// Uploads one account may have receiving bytes at once.
    pub max_unfinished_uploads: u32,
    /// Most bytes of video file blocks (and their RTMP chunks) kept in memory for all
    /// viewers together; the least recently used go first.
    pub cache_bytes: usize,
    /// How long a video nobody plays keeps its index and cached blocks.
    #[serde(with = "duration::serde_required")]
    pub linger: Duration,
}

impl Default for VodConfig {
    fn default() -> Self {
        VodConfig {
            max_upload_bytes: 4 << 30,
            upload_expiry: Duration::from_secs(24 * 3600),
            max_unfinished_uploads: 5,
            cache_bytes: 64 * 1024 * 1024,
            linger: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Where HLS segments and playlists are written.
    pub fn recordings_dir(&self) -> PathBuf {
        self.hls
            .recordings_dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("recordings"))
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `onair=debug,onair_rtmp=trace`. `ONAIR_LOG` wins.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the configuration could not be loaded. Each is one line naming the offending file
/// (with line and column), key or variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key in it is unknown or has a bad value.
    #[error("config file {path}{}: {}", place(.at), keyed(.key, .message))]
    File {
        /// The file.
        path: String,
        /// Where in the file, when known.
        at: Option<Location>,
        /// The key, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An environment variable is no key of a known section, or has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong, with the key.
        message: String,
    },
    /// A value is out of range (one that neither the file nor the environment set).
    #[error("config key {key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn place(at: &Option<Location>) -> String {
    at.map(|l| format!(":{l}")).unwrap_or_default()
}

fn keyed(key: &Option<String>, message: &str) -> String {
    match key {
        Some(key) => format!("{key}: {message}"),
        None => message.to_owned(),
    }
}

/// toml's and serde's messages, on one line: a log line or a terminal line each.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether loading reads the files the configuration names, to check them.
#[derive(Debug, Clone, Copy)]
enum Files {
    Read,
    Skip,
}

/// A loaded configuration and what the loading noticed.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// `ONAIR_*` variables that are no config key and were ignored: the caller warns of each
    /// once, when its logging is up.
    pub ignored: Vec<IgnoredVar>,
    /// The environment variables that set an option, in the order read.
    pub overrides: Vec<String>,
}

impl Config {
    /// Loads `path` (if given) and applies `ONAIR_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Ok(Self::load_reporting(path, env)?.config)
    }

    /// [`Config::load`], also returning the ignored variables and the overrides.
    pub fn load_reporting(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::load_checking(path, env, Files::Read)
    }

    /// [`Config::load_reporting`] without reading the files the configuration names (the
    /// `[tls]` certificate and key): for the commands that never open them, so that an
    /// operator who may not read the private key can still run `onair user …`. Everything
    /// else is checked the same.
    pub fn load_without_files(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::load_checking(path, env, Files::Skip)
    }

    fn load_checking(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        files: Files,
    ) -> Result<Loaded, ConfigError> {
        let (text, name) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                (text, p.display().to_string())
            }
            None => (String::new(), "(defaults)".to_owned()),
        };
        let file_error =
            |span: Option<Range<usize>>, key: Option<String>, message: &str| ConfigError::File {
                path: name.clone(),
                at: span.map(|s| source::location(&text, s.start)),
                key,
                message: one_line(message),
            };
        // The file alone first, so that its errors carry its line numbers: once merged with
        // the environment the spans are gone.
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(e.span(), None, e.message()))?;
        if let Some((key, message)) = unknown_file_key(&table) {
            return Err(file_error(
                source::key_span(&text, &key),
                Some(key),
                &message,
            ));
        }
        if let Err(e) = toml::from_str::<Config>(&text) {
            let key = e.span().and_then(|s| source::key_at(&text, s.start));
            return Err(file_error(e.span(), key, e.message()));
        }

        let mut ignored = Vec::new();
        let mut overridden: Vec<(String, &'static str)> = Vec::new();
        let mut database_url_env = None;
        for (var, value) in env {
            if var == "DATABASE_URL" {
                // The conventional variable, as Docker images and PaaS set it. An explicit
                // storage.database_url (file or ONAIR_STORAGE_DATABASE_URL) wins.
                database_url_env = Some(value);
                continue;
            }
            let opt = match env::classify(&var) {
                env::EnvName::Other => continue,
                env::EnvName::Ignored(var) => {
                    ignored.push(var);
                    continue;
                }
                env::EnvName::Unknown { dotted, closest } => {
                    return Err(ConfigError::Env {
                        message: format!(
                            "no option {dotted}; the closest is {} ({})",
                            closest.key,
                            env::var_name(closest)
                        ),
                        var,
                    });
                }
                env::EnvName::Key(opt) => opt,
            };
            let parsed = parse_env_value(&value);
            let mut alone = toml::Table::new();
            insert(&mut alone, opt, parsed.clone());
            if let Err(e) = Config::deserialize(toml::Value::Table(alone)) {
                return Err(ConfigError::Env {
                    message: format!("{}: {}", opt.key, one_line(e.message())),
                    var,
                });
            }
            if !insert(&mut table, opt, parsed) {
                return Err(ConfigError::Env {
                    message: format!(
                        "[{}] in the file is not a table",
                        opt.section().unwrap_or("")
                    ),
                    var,
                });
            }
            overridden.push((var, opt.key));
        }
        if let Some(url) = database_url_env.filter(|u| !u.is_empty()) {
            let storage = table
                .entry("storage")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(storage) = storage.as_table_mut()
                && !storage.contains_key("database_url")
            {
                storage.insert("database_url".into(), toml::Value::String(url));
                overridden.push(("DATABASE_URL".into(), "storage.database_url"));
            }
        }
        let config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| file_error(None, None, e.message()))?;
        match config.validate(files) {
            Ok(()) => {}
            Err(ConfigError::Invalid { key, message }) => {
                return Err(place_invalid(&text, &overridden, key, message, file_error));
            }
            Err(other) => return Err(other),
        }
        Ok(Loaded {
            config,
            ignored,
            overrides: overridden.into_iter().map(|(var, _)| var).collect(),
        })
    }

    fn validate(&self, files: Files) -> Result<(), ConfigError> {
        if !(128..=0xFF_FFFF).contains(&self.rtmp.chunk_size) {
            return Err(ConfigError::Invalid {
                key: "rtmp.chunk_size",
                message: format!("{} is outside 128..=16777215", self.rtmp.chunk_size),
            });
        }
        if self.rtmp.max_message_size == 0 || self.rtmp.max_message_size > 0xFF_FFFF {
            return Err(ConfigError::Invalid {
                key: "rtmp.max_message_size",
                message: format!("{} is outside 1..=16777215", self.rtmp.max_message_size),
            });
        }
        for (key, value) in [
            ("vod.max_upload_bytes", self.vod.max_upload_bytes),
            (
                "vod.max_unfinished_uploads",
                u64::from(self.vod.max_unfinished_uploads),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                });
            }
        }
        if self.worker_threads > 1024 {
            return Err(ConfigError::Invalid {
                key: "worker_threads",
                message: format!("{} is outside 0..=1024", self.worker_threads),
            });
        }
        if self.hub.max_write_delay > Duration::from_secs(1) {
            // Past a second the "latency budget" is a buffer: players see it as stalls.
            return Err(ConfigError::Invalid {
                key: "hub.max_write_delay",
                message: format!(
                    "{} ms is more than 1000 ms",
                    self.hub.max_write_delay.as_millis()
                ),
            });
        }
        if self.restream.max_per_channel > 100 {
            return Err(ConfigError::Invalid {
                key: "restream.max_per_channel",
                message: format!("{} is outside 0..=100", self.restream.max_per_channel),
            });
        }
        if self.restream.max_backoff < Duration::from_millis(500) {
            return Err(ConfigError::Invalid {
                key: "restream.max_backoff",
                message: "must be at least 500ms, the first retry's wait".into(),
            });
        }
        if listens_on_one_port(self.rtmp.listen, self.http.listen) {
            return Err(ConfigError::Invalid {
                key: "http.listen",
                message: format!(
                    "{} takes the port of rtmp.listen ({}); give each its own",
                    self.http.listen, self.rtmp.listen
                ),
            });
        }
        self.validate_tls(files)?;
        self.validate_cluster()?;
        if let Some(url) = &self.rtmp.public_url {
            let host = url
                .strip_prefix("rtmp://")
                .or_else(|| url.strip_prefix("rtmps://"))
                .unwrap_or("");
            if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::Invalid {
                    key: "rtmp.public_url",
                    message: "must be rtmp://HOST[:PORT]/APP or rtmps://…, without spaces".into(),
                });
            }
        }
        if self.rtmp.app.is_empty() || self.rtmp.app.contains('/') {
            return Err(ConfigError::Invalid {
                key: "rtmp.app",
                message: "must be one non-empty path segment".into(),
            });
        }
        for key in &self.dev.keys {
            if !crate::channel::is_valid_name(&key.channel) {
                return Err(ConfigError::Invalid {
                    key: "dev.keys.channel",
                    message: format!("{:?} is not a valid channel name", key.channel),
                });
            }
            if key.key.expose().len() < 8 {
                return Err(ConfigError::Invalid {
                    key: "dev.keys.key",
                    message: format!("the key for {:?} is shorter than 8 characters", key.channel),
                });
            }
        }
        if let Some(secret) = &self.auth.secret
            && secret.expose().len() < 32
        {
            return Err(ConfigError::Invalid {
                key: "auth.secret",
                message: "must be at least 32 bytes (e.g. `openssl rand -base64 32`)".into(),
            });
        }
        if self.auth.login_attempts_per_minute == 0 {
            return Err(ConfigError::Invalid {
                key: "auth.login_attempts_per_minute",
                message: "must be at least 1".into(),
            });
        }
        let http_checks: [(&'static str, bool, &str); 3] = [
            (
                "http.max_connections",
                self.http.max_connections >= 1,
                "must be at least 1",
            ),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address >= 1,
                "must be at least 1",
            ),
            (
                "http.reserved_descriptors",
                self.http.reserved_descriptors >= 32,
                "must be at least 32: recordings and the database need them",
            ),
        ];
        let auth_checks: [(&'static str, bool, &str); 4] = [
            (
                "auth.password_hash_kib",
                (1024..=onair_auth::MAX_MEMORY_KIB).contains(&self.auth.password_hash_kib),
                "must be 1024..=1048576 (1 MiB to 1 GiB)",
            ),
            (
                "auth.password_hash_passes",
                (1..=16).contains(&self.auth.password_hash_passes),
                "must be 1..=16",
            ),
            (
                "auth.password_hash_threads",
                self.auth.password_hash_threads <= 256,
                "must be at most 256 (0: one per core)",
            ),
            (
                "auth.password_hash_wait",
                (Duration::from_millis(100)..=Duration::from_secs(60))
                    .contains(&self.auth.password_hash_wait),
                "must be between 100ms and 60s",
            ),
        ];
        for (key, ok, message) in http_checks.into_iter().chain(auth_checks) {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: message.to_owned(),
                });
            }
        }
        if let Some(url) = &self.storage.database_url {
            let url = url.expose();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return Err(ConfigError::Invalid {
                    key: "storage.database_url",
                    message: "must start with postgres://, postgresql:// or sqlite:".into(),
                });
            }
        }
        if self
            .auth
            .stream_key_ttl
            .is_some_and(|d| d < Duration::from_secs(60))
        {
            return Err(ConfigError::Invalid {
                key: "auth.stream_key_ttl",
                message: "must be at least 60s, or unset for keys that last until revoked".into(),
            });
        }
        if !(Duration::from_millis(500)..=Duration::from_secs(30))
            .contains(&self.hls.target_duration)
        {
            return Err(ConfigError::Invalid {
                key: "hls.target_duration",
                message: "must be between 500ms and 30s".into(),
            });
        }
        // RFC 8216 §6.2.2: a live playlist must span at least three target durations.
        let chat = &self.chat;
        let chat_checks: [(&'static str, bool, &str); 8] = [
            ("chat.history", chat.history <= 1000, "must be at most 1000"),
            (
                "chat.max_message_chars",
                (1..=10_000).contains(&chat.max_message_chars),
                "must be 1..=10000",
            ),
            (
                "chat.user_messages",
                chat.user_messages >= 1,
                "must be at least 1",
            ),
            (
                "chat.flood_frames_per_second",
                chat.flood_frames_per_second >= 1,
                "must be at least 1",
            ),
            (
                "chat.client_queue",
                (4..=1_000_000).contains(&chat.client_queue),
                "must be 4..=1000000",
            ),
            (
                "chat.broadcast_window",
                chat.broadcast_window <= Duration::from_secs(1),
                "must be at most 1s",
            ),
            (
                "chat.viewers_interval",
                chat.viewers_interval >= Duration::from_millis(100),
                "must be at least 100ms",
            ),
            (
                "chat.idle_timeout",
                chat.idle_timeout > chat.ping_interval && !chat.ping_interval.is_zero(),
                "must be longer than a non-zero chat.ping_interval",
            ),
        ];
        for (key, ok, message) in chat_checks {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: message.to_owned(),
                });
            }
        }
        if self.vod.cache_bytes < 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "vod.cache_bytes",
                message: format!(
                    "{} is below 1048576: one video block would not fit",
                    self.vod.cache_bytes
                ),
            });
        }
        if !(3..=1000).contains(&self.hls.live_window) {
            return Err(ConfigError::Invalid {
                key: "hls.live_window",
                message: format!("{} is outside 3..=1000", self.hls.live_window),
            });
        }
        for d in [
            ("auth.access_token_ttl", self.auth.access_token_ttl),
            ("rtmp.handshake_timeout", self.rtmp.handshake_timeout),
            ("rtmp.idle_timeout", self.rtmp.idle_timeout),
            ("rtmp.ping_interval", self.rtmp.ping_interval),
            ("hub.write_timeout", self.hub.write_timeout),
            ("http.header_timeout", self.http.header_timeout),
            ("http.body_timeout", self.http.body_timeout),
            ("http.idle_timeout", self.http.idle_timeout),
            ("vod.upload_expiry", self.vod.upload_expiry),
        ] {
            if d.1.is_zero() {
                return Err(ConfigError::Invalid {
                    key: d.0,
                    message: "must be more than zero".into(),
                });
            }
        }
        Ok(())
    }

    /// `[cluster]`: a NATS URL, subject prefix, node id, bucket and advertised address of the
    /// right shape, and a lease the refresh (a third of it) can keep.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let cluster = &self.cluster;
        let subject_token = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if !subject_token(&cluster.subject_prefix) {
            return Err(ConfigError::Invalid {
                key: "cluster.subject_prefix",
                message: format!(
                    "{:?} is not a NATS subject prefix: dot-separated letters, digits, - and _",
                    cluster.subject_prefix
                ),
            });
        }
        if let Some(node) = &cluster.node_id
            && (node.is_empty() || node.len() > 64 || node.chars().any(|c| c.is_control()))
        {
            return Err(ConfigError::Invalid {
                key: "cluster.node_id",
                message: "must be 1 to 64 characters, no control characters".into(),
            });
        }
        if let Some(url) = &cluster.nats_url {
            let url = url.expose();
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|p| url.starts_with(p));
            if !scheme_ok || url.chars().any(char::is_whitespace) {
                // The URL may carry a password: only its shape is told.
                return Err(ConfigError::Invalid {
                    key: "cluster.nats_url",
                    message: "must be a nats:// (or tls://, ws://, wss://) URL".into(),
                });
            }
        }
        if cluster.reorder_hold.is_zero() || cluster.reorder_hold > Duration::from_secs(5) {
            return Err(ConfigError::Invalid {
                key: "cluster.reorder_hold",
                message: "must be more than 0 and at most 5s".into(),
            });
        }
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if cluster.lease < Duration::from_secs(1) {
            return invalid("cluster.lease", format!("{:?} is under 1s", cluster.lease));
        }
        let bucket_ok = !cluster.lives_bucket.is_empty()
            && cluster
                .lives_bucket
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        if !bucket_ok {
            return invalid(
                "cluster.lives_bucket",
                format!("{:?}: use letters, digits, _ and -", cluster.lives_bucket),
            );
        }
        let http = &cluster.advertise_http;
        if !(http.is_empty() || http.starts_with("http://") && http.len() > 7) {
            return invalid(
                "cluster.advertise_http",
                format!("{http:?} is not an http:// URL"),
            );
        }
        Ok(())
    }

    /// `[tls]`: both files or neither, both readable and a matching pair (unless `files`
    /// says to skip reading them), and a port of its own.
    fn validate_tls(&self, files: Files) -> Result<(), ConfigError> {
        let tls = &self.tls;
        let (certificate, private_key) = match (&tls.certificate, &tls.private_key) {
            (None, None) if tls.https => {
                return Err(ConfigError::Invalid {
                    key: "tls.https",
                    message: "needs tls.certificate and tls.private_key".into(),
                });
            }
            (None, None) => return Ok(()),
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "tls.private_key",
                    message: "must be set with tls.certificate".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "tls.certificate",
                    message: "must be set with tls.private_key".into(),
                });
            }
        };
        if let Files::Read = files
            && let Err(e) = crate::tls::load(certificate, private_key)
        {
            let key = match &e {
                crate::tls::TlsError::File { path, .. } if path == private_key => "tls.private_key",
                _ => "tls.certificate",
            };
            return Err(ConfigError::Invalid {
                key,
                message: e.to_string(),
            });
        }
        for (key, other) in [
            ("rtmp.listen", self.rtmp.listen),
            ("http.listen", self.http.listen),
        ] {
            if listens_on_one_port(tls.rtmps_listen, other) {
                return Err(ConfigError::Invalid {
                    key: "tls.rtmps_listen",
                    message: format!(
                        "{} takes the port of {key} ({other}); give each its own",
                        tls.rtmps_listen
                    ),
                });
            }
        }
        Ok(())
    }

    /// The configuration as one line of JSON, secrets redacted, for the start-up log line.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("(unprintable config: {e})"))
    }

    /// The configuration as TOML with every secret redacted and each key under a comment
    /// from the option table, for `onair config`.
    pub fn redacted_toml(&self) -> String {
        options::annotated_toml(self)
    }
}

/// Whether two listen addresses would fight over one port: the same port (not 0, which picks a
/// free one), on the same address or where either is the unspecified address.
fn listens_on_one_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Names where an out-of-range `key` came from: the variable that set it (the environment
/// wins over the file), else its line in the file.
fn place_invalid(
    text: &str,
    overridden: &[(String, &'static str)],
    key: &'static str,
    message: String,
    file_error: impl Fn(Option<Range<usize>>, Option<String>, &str) -> ConfigError,
) -> ConfigError {
    let by_env = overridden
        .iter()
        .rev()
        .find(|(_, k)| key == *k || key.strip_prefix(*k).is_some_and(|r| r.starts_with('.')));
    match by_env {
        Some((var, _)) => ConfigError::Env {
            var: var.clone(),
            message: format!("{key}: {message}"),
        },
        None => match source::key_span(text, key) {
            Some(span) => file_error(Some(span), Some(key.to_owned()), &message),
            None => ConfigError::Invalid { key, message },
        },
    }
}

/// Sets `opt` in `table` to `value`; false when its section is there but is no table.
fn insert(table: &mut toml::Table, opt: &options::Opt, value: toml::Value) -> bool {
    let target = match opt.section() {
        Some(s) => match table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
        {
            Some(t) => t,
            None => return false,
        },
        None => table,
    };
    target.insert(opt.name().to_owned(), value);
    true
}

/// The first key of the file that is no option, with a message naming the closest one.
/// serde would refuse it too, but by listing every field of the section.
fn unknown_file_key(table: &toml::Table) -> Option<(String, String)> {
    let closest = |candidates: Vec<String>, wrong: &str| {
        candidates
            .into_iter()
            .min_by_key(|c| strsim::levenshtein(c, wrong))
            .map_or_else(String::new, |c| format!("; the closest is {c}"))
    };
    let sections = options::sections();
    for (key, value) in table {
        let top_level = || options::OPTIONS.iter().filter(|o| o.section().is_none());
        if top_level().any(|o| o.key == key) {
            continue;
        }
        let Some(section) = sections.iter().find(|s| *s == key) else {
            let candidates = top_level()
                .map(|o| o.key.to_owned())
                .chain(sections.iter().map(|s| format!("[{s}]")))
                .collect();
            return Some((
                key.clone(),
                format!("unknown key or section{}", closest(candidates, key)),
            ));
        };
        let Some(inner) = value.as_table() else {
            continue;
        };
        let in_section = || {
            options::OPTIONS
                .iter()
                .filter(|o| o.section() == Some(section))
        };
        for name in inner.keys() {
            if !in_section().any(|o| o.name() == name) {
                let candidates = in_section().map(|o| o.key.to_owned()).collect();
                let dotted = format!("{section}.{name}");
                let message = format!("unknown key{}", closest(candidates, &dotted));
                return Some((dotted, message));
            }
        }
    }
    None
}

fn parse_env_value(value: &str) -> toml::Value {
    let wrapped = format!("v = {value}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_owned())),
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_with_no_file_and_no_env() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.rtmp.listen.port(), 1935);
        assert!(!c.dev.open, "open publishing is off by default");
    }

    #[test]
    fn file_then_env_overrides() {
        let dir = std::env::temp_dir().join(format!("onair-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("onair.toml");
        std::fs::write(
            &path,
            "shutdown_grace = \"2s\"\n[rtmp]\nchunk_size = 8192\n[[dev.keys]]\nchannel = \"demo\"\nkey = \"secret-key-1\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("ONAIR_RTMP_CHUNK_SIZE", "60000"),
                ("ONAIR_HUB_GOP_CACHE", "false"),
                ("ONAIR_HUB_MAX_LAG", "1500ms"),
                ("ONAIR_SHUTDOWN_GRACE", "7s"),
                ("ONAIR_CONFIG", "ignored"),
                ("ONAIR_TEST_POSTGRES", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rtmp.chunk_size, 60000);
        assert!(!c.hub.gop_cache);
        assert_eq!(c.hub.max_lag, Duration::from_millis(1500));
        assert_eq!(c.shutdown_grace, Duration::from_secs(7));
        assert_eq!(c.dev.keys[0].channel, "demo");
        assert_eq!(c.dev.keys[0].key.expose(), "secret-key-1");
    }

    #[test]
    fn errors_name_the_offending_key_or_variable() {
        let err = Config::load(None, env(&[("ONAIR_RTMP_CHUNK_SIZE", "12")])).unwrap_err();
        assert!(err.to_string().contains("rtmp.chunk_size"), "{err}");
        let err = Config::load(None, env(&[("ONAIR_HUB_MAX_LAG", "soon")])).unwrap_err();
        assert!(err.to_string().contains("ONAIR_HUB_MAX_LAG"), "{err}");
        let err = Config::load(None, env(&[("ONAIR_RTMP_NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");
    }

    /// Loads `text` as the file `onair.toml` in a fresh directory, with `vars` as the
    /// environment; the error's one line.
    fn file_error(name: &str, text: &str, vars: &[(&str, &str)]) -> String {
        let dir = std::env::temp_dir().join(format!("onair-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("onair.toml");
        std::fs::write(&path, text).unwrap();
        let err = Config::load(Some(&path), env(vars))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!err.contains('\n'), "one line: {err}");
        err.replace(&path.display().to_string(), "onair.toml")
    }

    #[test]
    fn file_errors_name_the_file_line_column_and_key() {
        let text = "shutdown_grace = \"2s\"\n\n[rtmp]\nchunk_sise = 8192\n";
        assert_eq!(
            file_error("unknown", text, &[]),
            "config file onair.toml:4:1: rtmp.chunk_sise: unknown key; the closest is rtmp.chunk_size"
        );
        assert_eq!(
            file_error("section", "[rtm]\nlisten = \"0.0.0.0:1\"\n", &[]),
            "config file onair.toml:1:2: rtm: unknown key or section; the closest is [rtmp]"
        );
        let err = file_error("type", "[rtmp]\n\nchunk_size = \"big\"\n", &[]);
        assert!(
            err.starts_with("config file onair.toml:3:14: rtmp.chunk_size: invalid type"),
            "{err}"
        );
        let err = file_error("duration", "[hub]\nmax_lag = \"soon\"\n", &[]);
        assert!(
            err.starts_with("config file onair.toml:2:11: hub.max_lag: "),
            "{err}"
        );
        let err = file_error("syntax", "[rtmp]\nchunk_size = \n", &[]);
        assert!(err.starts_with("config file onair.toml:2:"), "{err}");
        // Parsed fine, out of range: found by its key, on its line.
        assert_eq!(
            file_error("range", "[hls]\nenabled = true\nlive_window = 2\n", &[]),
            "config file onair.toml:3:1: hls.live_window: 2 is outside 3..=1000"
        );
        // The same value from the environment names the variable instead.
        assert_eq!(
            file_error(
                "range-env",
                "[hls]\nlive_window = 6\n",
                &[("ONAIR_HLS_LIVE_WINDOW", "2")]
            ),
            "environment variable ONAIR_HLS_LIVE_WINDOW: hls.live_window: 2 is outside 3..=1000"
        );
        let err = file_error(
            "dev-key",
            "[[dev.keys]]\nchannel = \"demo\"\nkey = \"short\"\n",
            &[],
        );
        assert!(
            err.starts_with("config file onair.toml:3:1: dev.keys.key: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_onair_variables_are_ignored_unless_they_name_a_section() {
        let loaded = Config::load_reporting(
            None,
            env(&[
                ("ONAIR_BIN", "/usr/local/bin/onair"),
                ("ONAIR_TEST_POSTGRES", "postgres://x"),
                ("ONAIR_LOG", "debug"),
                ("ONAIR_HUB_TAKEOVER", "true"),
            ]),
        )
        .unwrap();
        assert!(loaded.config.hub.takeover);
        let names: Vec<_> = loaded.ignored.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["ONAIR_BIN", "ONAIR_TEST_POSTGRES"]);
        assert_eq!(loaded.overrides, ["ONAIR_HUB_TAKEOVER"]);

        let err = Config::load(None, env(&[("ONAIR_HUB_TAKEOVR", "true")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable ONAIR_HUB_TAKEOVR: no option hub.takeovr; the closest is \
             hub.takeover (ONAIR_HUB_TAKEOVER)"
        );
    }

    #[test]
    fn database_url_comes_from_the_conventional_variable_unless_set_explicitly() {
        let c = Config::load(None, env(&[("DATABASE_URL", "postgres://db/onair")])).unwrap();
        assert_eq!(
            c.storage.database_url.as_ref().map(|u| u.expose().as_str()),
            Some("postgres://db/onair")
        );
        let c = Config::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://db/onair"),
                ("ONAIR_STORAGE_DATABASE_URL", "sqlite:other.db"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.storage.database_url.as_ref().map(|u| u.expose().as_str()),
            Some("sqlite:other.db")
        );
        let err = Config::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("storage.database_url"), "{err}");
        let text = Config::load(None, env(&[("DATABASE_URL", "postgres://u:pw@db/x")]))
            .unwrap()
            .redacted_toml();
        assert!(!text.contains("pw@db"), "{text}");
    }

    #[test]
    fn the_publish_url_is_configured_or_made_from_the_listen_address() {
        let mut rtmp = RtmpConfig::default();
        assert_eq!(rtmp.publish_url(), "rtmp://localhost/live");
        rtmp.listen = "192.0.2.7:19350".parse().unwrap();
        assert_eq!(rtmp.publish_url(), "rtmp://192.0.2.7:19350/live");
        rtmp.listen = "[2001:db8::1]:1935".parse().unwrap();
        assert_eq!(rtmp.publish_url(), "rtmp://[2001:db8::1]/live");
        rtmp.public_url = Some("rtmp://live.example.com/live/".into());
        assert_eq!(rtmp.publish_url(), "rtmp://live.example.com/live");
        let c = Config::load(
            None,
            env(&[("ONAIR_RTMP_PUBLIC_URL", "rtmps://live.example.com:443/live")]),
        )
        .unwrap();
        assert_eq!(c.rtmp.publish_url(), "rtmps://live.example.com:443/live");
        for bad in ["http://x/live", "rtmp://", "rtmp://a b/live"] {
            let err = Config::load(None, env(&[("ONAIR_RTMP_PUBLIC_URL", bad)])).unwrap_err();
            assert!(err.to_string().contains("rtmp.public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn rtmp_and_http_cannot_share_a_port() {
        let err = Config::load(
            None,
            env(&[
                ("ONAIR_RTMP_LISTEN", "127.0.0.1:8080"),
                ("ONAIR_HTTP_LISTEN", "0.0.0.0:8080"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("http.listen"), "{err}");
        for (rtmp, http) in [
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("0.0.0.0:1935", "0.0.0.0:8080"),
        ] {
            Config::load(
                None,
                env(&[("ONAIR_RTMP_LISTEN", rtmp), ("ONAIR_HTTP_LISTEN", http)]),
            )
            .unwrap_or_else(|e| panic!("{rtmp} and {http}: {e}"));
        }
    }

    #[test]
    fn tls_files_are_checked_at_load_naming_the_key() {
        let dir = std::env::temp_dir().join(format!("onair-tls-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let write_pair = |name: &str| {
            let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let (c, k) = (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&c, pair.cert.pem()).unwrap();
            std::fs::write(&k, pair.signing_key.serialize_pem()).unwrap();
            (c.display().to_string(), k.display().to_string())
        };
        let (c1, k1) = write_pair("one");
        let (_, k2) = write_pair("two");
        let load = |vars: &[(&str, &str)]| Config::load(None, env(vars));
        let ok = load(&[
            ("ONAIR_TLS_CERTIFICATE", &c1),
            ("ONAIR_TLS_PRIVATE_KEY", &k1),
            ("ONAIR_TLS_HTTPS", "true"),
        ])
        .unwrap();
        assert_eq!(
            ok.tls.files().map(|(c, _)| c.to_owned()),
            Some(c1.clone().into())
        );
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("ONAIR_TLS_CERTIFICATE", &c1)], "tls.private_key"),
            (&[("ONAIR_TLS_HTTPS", "true")], "tls.https"),
            (
                &[
                    ("ONAIR_TLS_CERTIFICATE", &c1),
                    ("ONAIR_TLS_PRIVATE_KEY", &k2),
                ],
                "tls.certificate",
            ),
            (
                &[
                    ("ONAIR_TLS_CERTIFICATE", &c1),
                    ("ONAIR_TLS_PRIVATE_KEY", "/nonexistent/key.pem"),
                ],
                "tls.private_key",
            ),
            (
                &[
                    ("ONAIR_TLS_CERTIFICATE", &c1),
                    ("ONAIR_TLS_PRIVATE_KEY", &k1),
                    ("ONAIR_TLS_RTMPS_LISTEN", "0.0.0.0:1935"),
                ],
                "tls.rtmps_listen",
            ),
        ];
        for (vars, key) in cases {
            let err = load(vars).unwrap_err();
            assert!(err.to_string().contains(key), "{vars:?}: {err}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_commands_that_never_open_the_tls_files_load_without_reading_them() {
        let unreadable = [
            ("ONAIR_TLS_CERTIFICATE", "/nonexistent/onair.crt"),
            ("ONAIR_TLS_PRIVATE_KEY", "/nonexistent/onair.key"),
        ];
        let err = Config::load(None, env(&unreadable)).unwrap_err();
        assert!(err.to_string().contains("tls.certificate"), "{err}");
        let loaded =
            Config::load_without_files(None, env(&unreadable)).expect("the files are not read");
        assert!(loaded.config.tls.files().is_some());
        // What needs no file is still checked.
        let half = Config::load_without_files(None, env(&unreadable[..1])).unwrap_err();
        assert!(half.to_string().contains("tls.private_key"), "{half}");
    }

    #[test]
    fn auth_values_are_checked() {
        let err = Config::load(None, env(&[("ONAIR_AUTH_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("auth.secret"), "{err}");
        let err = Config::load(None, env(&[("ONAIR_AUTH_STREAM_KEY_TTL", "5s")])).unwrap_err();
        assert!(err.to_string().contains("auth.stream_key_ttl"), "{err}");
        let c = Config::load(
            None,
            env(&[
                ("ONAIR_AUTH_STREAM_KEY_TTL", "30d"),
                ("ONAIR_AUTH_REGISTRATION", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.stream_key_ttl, Some(Duration::from_secs(720 * 3600)));
        assert!(c.auth.registration);
    }

    #[test]
    fn hls_values_are_checked() {
        let c = Config::load(
            None,
            env(&[
                ("ONAIR_HLS_LIVE_WINDOW", "10"),
                ("ONAIR_HLS_TARGET_DURATION", "4s"),
                ("ONAIR_HLS_RETENTION_MAX_AGE", "30d"),
            ]),
        )
        .unwrap();
        assert_eq!(c.hls.live_window, 10);
        assert_eq!(c.hls.target_duration, Duration::from_secs(4));
        assert_eq!(
            c.hls.retention_max_age,
            Some(Duration::from_secs(720 * 3600))
        );
        assert_eq!(c.recordings_dir(), PathBuf::from("data/recordings"));
        let err = Config::load(None, env(&[("ONAIR_HLS_LIVE_WINDOW", "2")])).unwrap_err();
        assert!(err.to_string().contains("hls.live_window"), "{err}");
        let err = Config::load(None, env(&[("ONAIR_HLS_TARGET_DURATION", "100ms")])).unwrap_err();
        assert!(err.to_string().contains("hls.target_duration"), "{err}");
    }

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 fortnights").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }

    #[test]
    fn the_logged_config_never_shows_a_key() {
        let mut c = Config::default();
        c.dev.keys.push(DevKey {
            channel: "demo".into(),
            key: StreamKey::new("super-secret-key".into()),
        });
        let text = c.redacted_toml();
        assert!(!text.contains("super-secret-key"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn the_reference_lists_every_key() {
        let text = reference();
        let c = toml::to_string(&Config::default()).unwrap();
        let table: toml::Table = c.parse().unwrap();
        for (section, value) in &table {
            match value.as_table() {
                Some(t) => {
                    for key in t.keys() {
                        assert!(
                            text.contains(&format!("{section}.{key}")),
                            "{section}.{key} missing from --help"
                        );
                    }
                }
                None => assert!(
                    text.contains(section.as_str()),
                    "{section} missing from --help"
                ),
            }
        }
    }
}
