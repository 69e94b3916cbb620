//! The one table of options: every key with what it means. `onair --help` ([`reference`]),
//! `onair config` ([`annotated_toml`]) and the commented example file ([`example_toml`]) are
//! rendered from it, with defaults and values read off a [`Config`] serialised to TOML, so
//! neither a default nor a key is written twice. A test fails when a field of [`Config`] has
//! no row here, or a row names no field.

use std::fmt::Write as _;

use super::Config;

/// One configuration option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// `section.key`, or `key` at the top level.
    pub key: &'static str,
    /// What it does, in a few words.
    pub meaning: &'static str,
    /// For an option with no default value: what `--help` shows in its place, and a TOML
    /// value the example file offers, commented out.
    pub unset: Option<(&'static str, &'static str)>,
}

impl Opt {
    const fn new(key: &'static str, meaning: &'static str) -> Opt {
        Opt {
            key,
            meaning,
            unset: None,
        }
    }

    const fn unset(
        key: &'static str,
        meaning: &'static str,
        shown: &'static str,
        example: &'static str,
    ) -> Opt {
        Opt {
            key,
            meaning,
            unset: Some((shown, example)),
        }
    }

    /// The `[section]` the option sits in, `None` at the top level.
    pub fn section(&self) -> Option<&'static str> {
        self.key.split_once('.').map(|(s, _)| s)
    }

    /// The key within its section.
    pub fn name(&self) -> &'static str {
        self.key.split_once('.').map_or(self.key, |(_, k)| k)
    }
}

/// Every option, top-level keys first, then section by section.
pub const OPTIONS: &[Opt] = &[
    Opt::new(
        "shutdown_grace",
        "how long shutdown waits for connections to finish",
    ),
    Opt::new(
        "worker_threads",
        "threads that run connections (0: one per core)",
    ),
    Opt::new("rtmp.listen", "RTMP listen address"),
    Opt::new(
        "rtmp.app",
        "application name in rtmp://host/{app}/{key or channel}",
    ),
    Opt::new(
        "rtmp.chunk_size",
        "chunk size we send with (128..=16777215)",
    ),
    Opt::new(
        "rtmp.window_ack_size",
        "acknowledgement window we ask peers to use",
    ),
    Opt::new("rtmp.max_message_size", "largest message a peer may send"),
    Opt::new(
        "rtmp.handshake_timeout",
        "drop connections without handshake + connect by then",
    ),
    Opt::new("rtmp.idle_timeout", "drop connections silent for this long"),
    Opt::new("rtmp.ping_interval", "ping heartbeat interval"),
    Opt::unset(
        "rtmp.public_url",
        "the server URL publishers are told, beside issued keys",
        "(rtmp://{listen}/{app})",
        "\"rtmp://live.example.com/live\"",
    ),
    Opt::new(
        "rtmp.max_connections",
        "RTMP connections at once (0: the descriptor budget only); then publish/play refused; SIGHUP applies it",
    ),
    Opt::new(
        "rtmp.max_connections_per_address",
        "RTMP connections at once from one address (IPv6: a /64; 0: no cap); SIGHUP applies it",
    ),
    Opt::new(
        "http.listen",
        "HTTP listen address (HTTP-FLV, WS-FLV, /healthz, /metrics)",
    ),
    Opt::new(
        "http.cors_origins",
        "origins allowed to play streams (\"*\" = any)",
    ),
    Opt::new(
        "http.header_timeout",
        "a request head must be complete this long after its first byte; SIGHUP applies it",
    ),
    Opt::new(
        "http.body_timeout",
        "a request body must arrive this long after its head (else 408); SIGHUP applies it",
    ),
    Opt::new(
        "http.idle_timeout",
        "close connections with no request this long (streams never); SIGHUP applies it",
    ),
    Opt::new(
        "http.max_connections",
        "HTTP connections at once; then the longest-idle closes, or 503; SIGHUP applies it",
    ),
    Opt::new(
        "http.max_connections_per_address",
        "HTTP connections at once from one address (IPv6: a /64); then 503; SIGHUP applies it",
    ),
    Opt::new(
        "http.reserved_descriptors",
        "open files kept free of connections for recordings and the database",
    ),
    Opt::unset(
        "http.metrics_token",
        "bearer token /metrics asks for (a secret; unset: no token)",
        "(none)",
        "\"a-long-random-token\"",
    ),
    Opt::new("hub.gop_cache", "start new viewers at the last keyframe"),
    Opt::new(
        "hub.max_lag",
        "viewers further behind skip to the newest keyframe",
    ),
    Opt::new("hub.max_lag_bytes", "the same bound in bytes"),
    Opt::new(
        "hub.max_skips",
        "skips within 30 s of media before a viewer is dropped",
    ),
    Opt::new(
        "hub.max_channel_bytes",
        "memory cap per channel (GOP cache + lag)",
    ),
    Opt::new(
        "hub.max_write_delay",
        "latency budget: a busy core batches writes, no frame waits longer",
    ),
    Opt::new(
        "hub.takeover",
        "a second publisher takes over (true) or is refused (false)",
    ),
    Opt::new(
        "hub.republish_grace",
        "viewers wait this long for a publisher to return",
    ),
    Opt::new(
        "hub.wait_for_publisher",
        "RTMP viewers wait this long for a channel to go live",
    ),
    Opt::new(
        "hub.write_timeout",
        "drop viewers whose connection accepts nothing this long",
    ),
    Opt::new(
        "hub.max_viewers_per_channel",
        "viewers per channel over RTMP and FLV (0: no cap); then refused; SIGHUP applies it",
    ),
    Opt::new(
        "dev.open",
        "accept any publish name as a channel (development only)",
    ),
    Opt::new(
        "dev.keys",
        "static keys: [[dev.keys]] channel = \"demo\", key = \"…\"",
    ),
    Opt::new("log.level", "tracing filter (ONAIR_LOG overrides)"),
    Opt::new("log.format", "text or json"),
    Opt::unset(
        "storage.database_url",
        "postgres://… or sqlite:…; unset = SQLite in data_dir; DATABASE_URL too",
        "(unset)",
        "\"postgres://onair@localhost/onair\"",
    ),
    Opt::new("storage.data_dir", "directory for the embedded database"),
    Opt::unset(
        "auth.secret",
        "signing secret for keys and tokens, >= 32 bytes; kept in the database if unset",
        "(generated)",
        "\"at-least-32-bytes-of-random-text-here\"",
    ),
    Opt::new("auth.registration", "anyone may register a viewer account"),
    Opt::new(
        "auth.access_token_ttl",
        "lifetime of a login's access token",
    ),
    Opt::unset(
        "auth.stream_key_ttl",
        "lifetime of a stream key; unset = until revoked",
        "(unset)",
        "\"30d\"",
    ),
    Opt::new(
        "auth.login_attempts_per_minute",
        "login attempts per minute per address, and per account from one address",
    ),
    Opt::new(
        "auth.bootstrap",
        "first start: create an admin, a demo channel and a key",
    ),
    Opt::new(
        "auth.password_hash_kib",
        "memory per password hash in KiB (Argon2id m; held by each hashing thread)",
    ),
    Opt::new(
        "auth.password_hash_passes",
        "passes over that memory (Argon2id t)",
    ),
    Opt::new(
        "auth.password_hash_threads",
        "password hashes computed at once (0 = one per core)",
    ),
    Opt::new(
        "auth.password_hash_wait",
        "a login waits this long for a hashing thread, then gets 503",
    ),
    Opt::new(
        "hls.enabled",
        "serve live channels as HLS and record replays",
    ),
    Opt::new(
        "hls.target_duration",
        "HLS segments cut at the first keyframe after this",
    ),
    Opt::new(
        "hls.live_window",
        "segments in the live playlist (3..=1000)",
    ),
    Opt::unset(
        "hls.recordings_dir",
        "where segments, playlists and replays are written",
        "(data_dir/recordings)",
        "\"/var/lib/onair/recordings\"",
    ),
    Opt::unset(
        "hls.retention_max_age",
        "delete replays older than this; an admin policy wins",
        "(unset)",
        "\"30d\"",
    ),
    Opt::unset(
        "hls.retention_max_bytes",
        "per channel, delete the oldest replays beyond this size",
        "(unset)",
        "50000000000",
    ),
    Opt::new(
        "vod.max_upload_bytes",
        "largest file one upload may be, in bytes (Tus-Max-Size)",
    ),
    Opt::new(
        "vod.upload_expiry",
        "an upload idle this long is removed; an outcome stays readable this long",
    ),
    Opt::new(
        "vod.max_unfinished_uploads",
        "uploads one account may have receiving bytes at once",
    ),
    Opt::new(
        "vod.cache_bytes",
        "memory for VOD file blocks shared by all RTMP VOD viewers (at least 1 MiB)",
    ),
    Opt::new(
        "vod.linger",
        "a video nobody plays keeps its index and cached blocks this long",
    ),
    Opt::new(
        "chat.history",
        "messages a client gets when it joins a room",
    ),
    Opt::new(
        "chat.max_message_chars",
        "longest chat line or danmaku, in characters",
    ),
    Opt::new(
        "chat.user_messages",
        "messages one user may send per chat.user_window",
    ),
    Opt::new("chat.user_window", "the window of chat.user_messages"),
    Opt::new(
        "chat.flood_frames_per_second",
        "frames one connection may send per second",
    ),
    Opt::unset(
        "chat.slow_mode",
        "default slow mode: one message per user per this",
        "(unset)",
        "\"5s\"",
    ),
    Opt::new(
        "chat.client_queue",
        "frames queued per client before it is dropped",
    ),
    Opt::new(
        "chat.broadcast_window",
        "the longest a busy room gathers broadcasts into one write per client",
    ),
    Opt::new(
        "chat.batch_min_members",
        "rooms with fewer members send every broadcast at once",
    ),
    Opt::new(
        "chat.batch_writes_per_second",
        "client writes a second a busy room aims at: its window is members / this (0: always the longest)",
    ),
    Opt::new(
        "chat.viewers_interval",
        "how often rooms get the audience count",
    ),
    Opt::new(
        "chat.ping_interval",
        "how often idle chat clients are pinged",
    ),
    Opt::new(
        "chat.idle_timeout",
        "chat clients silent this long are dropped",
    ),
    Opt::unset(
        "tls.certificate",
        "PEM certificate chain for RTMPS (and HTTPS); unset = no TLS; SIGHUP reloads it",
        "(unset)",
        "\"/etc/onair/tls/fullchain.pem\"",
    ),
    Opt::unset(
        "tls.private_key",
        "PEM private key of tls.certificate",
        "(unset)",
        "\"/etc/onair/tls/privkey.pem\"",
    ),
    Opt::new(
        "tls.rtmps_listen",
        "RTMPS listen address, used when a certificate is set",
    ),
    Opt::new(
        "tls.https",
        "serve http.listen as HTTPS only, with the same certificate",
    ),
    Opt::unset(
        "cluster.nats_url",
        "NATS server the nodes share (a secret; unset = one node, no NATS)",
        "(unset: single node)",
        "\"nats://127.0.0.1:4222\"",
    ),
    Opt::unset(
        "cluster.node_id",
        "this node's name among the others",
        "(host name + random suffix)",
        "\"onair-1\"",
    ),
    Opt::new(
        "cluster.subject_prefix",
        "first part of every NATS subject, one per platform sharing a NATS",
    ),
    Opt::new(
        "cluster.reorder_hold",
        "how long chat waits for another node's message before reading it from the database",
    ),
    Opt::new(
        "cluster.advertise_http",
        "base URL other nodes reach this node's HTTP on; empty = http:// + the bound http.listen",
    ),
    Opt::new(
        "cluster.lives_bucket",
        "JetStream KV bucket of which node holds which live channel",
    ),
    Opt::new(
        "cluster.lease",
        "a live channel's claim lasts this long unrefreshed: a crashed origin is noticed within it",
    ),
    Opt::new(
        "cluster.edge_linger",
        "an edge keeps pulling a channel this long after its last viewer left",
    ),
    Opt::unset(
        "cluster.relay_token",
        "token edges show origins to count as relays, not viewers (a secret; same on every node)",
        "(none)",
        "\"a-long-random-token\"",
    ),
    Opt::new(
        "restream.max_per_channel",
        "restream destinations one channel may have (0: restreaming off)",
    ),
    Opt::new(
        "restream.max_backoff",
        "longest wait between attempts to reach a restream destination that failed",
    ),
    Opt::unset(
        "restream.ca_file",
        "PEM file of CA certificates trusted for rtmps:// destinations, besides the system's",
        "(system roots only)",
        "\"/etc/onair/cdn-ca.pem\"",
    ),
    Opt::new(
        "restream.allow_private_addresses",
        "let destinations be on loopback, private or link-local addresses (off: only public ones)",
    ),
];

/// The options whose values differ between `a` and `b` (secrets compare as redacted, so a
/// changed secret is not seen).
pub fn changed_keys(a: &Config, b: &Config) -> Vec<&'static str> {
    let (a, b) = (as_table(a), as_table(b));
    OPTIONS
        .iter()
        .filter(|opt| value_of(&a, opt) != value_of(&b, opt))
        .map(|opt| opt.key)
        .collect()
}

/// The sections of the file, in table order.
pub fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in OPTIONS.iter().filter_map(Opt::section) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// `config` as a TOML table (secrets already redacted by their types).
fn as_table(config: &Config) -> toml::Table {
    toml::Table::try_from(config).unwrap_or_default()
}

/// The value of `opt` in `table`, as TOML source, or `None` when it is unset.
fn value_of(table: &toml::Table, opt: &Opt) -> Option<String> {
    let section = match opt.section() {
        Some(s) => table.get(s)?.as_table()?,
        None => table,
    };
    section.get(opt.name()).map(|v| match v {
        toml::Value::Table(t) => toml::Value::Table(t.clone()).to_string(),
        other => other.to_string(),
    })
}

/// The options reference printed by `onair --help`: key, default, meaning.
pub fn reference() -> String {
    let defaults = as_table(&Config::default());
    let mut out = String::from(
        "CONFIGURATION (TOML file via --config or ONAIR_CONFIG; each key also as ONAIR_<SECTION>_<KEY>):\n",
    );
    for opt in OPTIONS {
        let default = match (value_of(&defaults, opt), opt.unset) {
            (Some(v), _) => v.trim_matches('"').to_owned(),
            (None, Some((shown, _))) => shown.to_owned(),
            (None, None) => "(unset)".to_owned(),
        };
        let _ = writeln!(out, "  {:<32} {default:<16} {}", opt.key, opt.meaning);
    }
    out
}

/// `config` as a TOML file, each key under a comment saying what it does and its default;
/// keys that are unset appear commented out. Secrets print as `[redacted]`. This is what
/// `onair config` prints: a file that loads back into the same configuration, secrets aside.
pub fn annotated_toml(config: &Config) -> String {
    render(&as_table(config), &as_table(&Config::default()), false)
}

/// The commented example configuration: every option at its default, commented out, so a
/// copy changes nothing until a line is uncommented.
pub fn example_toml() -> String {
    let defaults = as_table(&Config::default());
    render(&defaults, &defaults, true)
}

fn render(values: &toml::Table, defaults: &toml::Table, all_commented: bool) -> String {
    let mut out = String::from(
        "# OnAir configuration (TOML). Every key can also be set as ONAIR_<SECTION>_<KEY>,\n\
         # a top-level key as ONAIR_<KEY>; `onair --help` lists them all.\n\
         # `onair config check FILE` validates a file without starting the server.\n",
    );
    let mut current = None;
    for opt in OPTIONS {
        if opt.section() != current {
            current = opt.section();
            if let Some(s) = current {
                let _ = write!(out, "\n[{s}]\n");
            }
        }
        let default = value_of(defaults, opt)
            .or_else(|| opt.unset.map(|(shown, _)| shown.to_owned()))
            .unwrap_or_default();
        let _ = write!(out, "\n# {} (default: {default})\n", opt.meaning);
        let (value, commented) = match value_of(values, opt) {
            Some(v) => (v, all_commented),
            None => (
                opt.unset.map_or("", |(_, example)| example).to_owned(),
                true,
            ),
        };
        let hash = if commented { "# " } else { "" };
        let _ = writeln!(out, "{hash}{} = {value}", opt.name());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `section.key` that `config` serialises (unset options are absent).
    fn serialised_keys(config: &Config) -> Vec<String> {
        let mut keys = Vec::new();
        for (k, v) in as_table(config) {
            match v {
                toml::Value::Table(t) => keys.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                _ => keys.push(k),
            }
        }
        keys
    }

    #[test]
    fn every_serialised_field_has_a_row_and_rows_are_unique() {
        for key in serialised_keys(&Config::default()) {
            assert!(
                OPTIONS.iter().any(|o| o.key == key),
                "config key {key} has no row in OPTIONS"
            );
        }
        let mut keys: Vec<_> = OPTIONS.iter().map(|o| o.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), OPTIONS.len(), "a key is listed twice");
    }

    #[test]
    fn every_unset_row_is_a_real_key_and_its_example_loads() {
        let defaults = as_table(&Config::default());
        for opt in OPTIONS {
            let Some((_, example)) = opt.unset else {
                assert!(
                    value_of(&defaults, opt).is_some(),
                    "{} has no default and no unset text",
                    opt.key
                );
                continue;
            };
            let text = match opt.section() {
                Some(s) => format!("[{s}]\n{} = {example}\n", opt.name()),
                None => format!("{} = {example}\n", opt.name()),
            };
            let config: Config = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: example {example} does not load: {e}", opt.key));
            assert!(
                serialised_keys(&config).iter().any(|k| k == opt.key),
                "{}: setting the example did not set the key",
                opt.key
            );
        }
    }

    #[test]
    fn sections_match_the_config_file() {
        let mut from_config: Vec<String> = as_table(&Config::default())
            .into_iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| k)
            .collect();
        from_config.sort();
        let mut from_table: Vec<String> = sections().into_iter().map(str::to_owned).collect();
        from_table.sort();
        assert_eq!(from_config, from_table);
    }

    #[test]
    fn the_example_and_the_annotated_file_load_back() {
        let example = example_toml();
        let parsed: Config = toml::from_str(&example).unwrap();
        assert_eq!(
            parsed,
            Config::default(),
            "a commented-out example changes nothing"
        );
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.contains("(default:") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let with_examples: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(
            with_examples.rtmp.public_url.as_deref(),
            Some("rtmp://live.example.com/live")
        );
        let rtmp = super::super::RtmpConfig {
            public_url: None,
            ..with_examples.rtmp
        };
        assert_eq!(rtmp, Config::default().rtmp);
        assert_eq!(with_examples.hls.retention_max_bytes, Some(50_000_000_000));

        let mut changed = Config::default();
        changed.rtmp.chunk_size = 8192;
        changed.hub.takeover = true;
        changed.chat.slow_mode = Some(std::time::Duration::from_secs(3));
        let annotated = annotated_toml(&changed);
        let back: Config = toml::from_str(&annotated).unwrap();
        assert_eq!(back, changed);
    }

    #[test]
    fn help_example_and_annotated_file_name_the_same_keys() {
        let help = reference();
        let example = example_toml();
        for opt in OPTIONS {
            assert!(help.contains(opt.key), "--help misses {}", opt.key);
            assert!(
                help.contains(opt.meaning),
                "--help misses {}'s meaning",
                opt.key
            );
            assert!(
                example.contains(&format!("# {} = ", opt.name())),
                "the example misses {}",
                opt.key
            );
            assert!(example.contains(opt.meaning));
        }
        assert!(
            help.contains("rtmp.listen                      0.0.0.0:1935"),
            "{help}"
        );
    }

    #[test]
    fn the_shipped_example_file_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/onair.toml");
        let shipped = std::fs::read_to_string(path).expect("deploy/onair.toml");
        assert!(
            shipped == example_toml(),
            "deploy/onair.toml is stale: regenerate it with \
             `cargo run -p onair -- config --example > deploy/onair.toml`"
        );
    }

    #[test]
    fn secrets_stay_redacted_in_the_annotated_file() {
        let mut config = Config::default();
        config.auth.secret = Some(crate::secret::SecretText::new(
            "s3cret-s3cret-s3cret-s3cret-s3cret".into(),
        ));
        config.http.metrics_token = Some(crate::secret::SecretText::new(
            "s3cret-metrics-token".into(),
        ));
        let text = annotated_toml(&config);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("secret = \"[redacted]\""), "{text}");
        assert!(text.contains("metrics_token = \"[redacted]\""), "{text}");
    }
}
