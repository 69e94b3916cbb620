//! Who may publish where. The RTMP ingest asks one [`PublishAuth`]; today that is the static
//! key map or open mode from `[dev]`, and the accounts work swaps in signed, revocable keys
//! behind the same trait.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::channel::is_valid_name;
use crate::config::DevConfig;
use crate::secret::StreamKey;

/// A publish to authorise.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The RTMP application (`live`).
    pub app: String,
    /// The publish name with any `?query` removed: the stream key.
    pub key: StreamKey,
    /// The peer's address, for logs and audit.
    pub peer: std::net::SocketAddr,
}

/// A publish that may go ahead, on this channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The public channel name the stream goes live under (never the key).
    pub channel: String,
}

/// Why a publish was refused. The message is safe to log and to send to the publisher: it
/// never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No channel has this key.
    #[error("unknown stream key")]
    UnknownKey,
    /// The name is not a valid channel name (open mode).
    #[error("invalid channel name (use 1-64 of A-Z a-z 0-9 _ -)")]
    InvalidName,
    /// The application is not the one we serve. The name is not kept: a publisher that leaves
    /// the app out of its URL (`rtmp://host/KEY`) sends its key as the app.
    #[error("unknown application (publish to rtmp://host/live/STREAM_KEY)")]
    UnknownApp,
    /// The key check itself failed (e.g. the store is down).
    #[error("cannot check the key now: {0}")]
    Unavailable(String),
}

/// Decides whether a publish may go ahead, and under which channel.
pub trait PublishAuth: Send + Sync + fmt::Debug {
    /// Checks one publish request.
    fn authorize<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Authorized, Refusal>>;

    /// Whether `name` is a stream key. Playback refuses such names without logging them: a
    /// streamer who pastes a key where the channel goes must not find it in a log or on air.
    fn is_stream_key(&self, name: &str) -> bool;
}

/// The `[dev]` section as an authoriser: static keys, and in open mode any valid name.
#[derive(Debug, Clone)]
pub struct DevAuth {
    config: DevConfig,
}

impl DevAuth {
    /// An authoriser for `config`.
    pub fn new(config: DevConfig) -> Arc<Self> {
        Arc::new(DevAuth { config })
    }
}

impl PublishAuth for DevAuth {
    fn is_stream_key(&self, name: &str) -> bool {
        self.config
            .keys
            .iter()
            .fold(false, |found, k| k.key.matches(name) | found)
    }

    fn authorize<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Authorized, Refusal>> {
        Box::pin(async move {
            // Walk every key so the time taken does not tell which keys exist.
            let mut found = None;
            for k in &self.config.keys {
                if k.key.matches(request.key.expose()) && found.is_none() {
                    found = Some(k.channel.clone());
                }
            }
            if let Some(channel) = found {
                return Ok(Authorized { channel });
            }
            if self.config.open {
                let name = request.key.expose();
                return if is_valid_name(name) {
                    Ok(Authorized {
                        channel: name.to_owned(),
                    })
                } else {
                    Err(Refusal::InvalidName)
                };
            }
            Err(Refusal::UnknownKey)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DevKey;

    fn req(key: &str) -> PublishRequest {
        PublishRequest {
            app: "live".into(),
            key: StreamKey::new(key.into()),
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn static_keys_map_to_channels_and_unknown_keys_are_refused() {
        let auth = DevAuth::new(DevConfig {
            open: false,
            keys: vec![DevKey {
                channel: "demo".into(),
                key: StreamKey::new("k-123456".into()),
            }],
        });
        assert_eq!(
            auth.authorize(&req("k-123456")).await,
            Ok(Authorized {
                channel: "demo".into()
            })
        );
        assert_eq!(
            auth.authorize(&req("demo")).await,
            Err(Refusal::UnknownKey),
            "the channel name is not a key"
        );
        assert_eq!(
            auth.authorize(&req("k-1234567")).await,
            Err(Refusal::UnknownKey)
        );
        assert!(auth.is_stream_key("k-123456"));
        assert!(!auth.is_stream_key("demo"));
    }

    #[tokio::test]
    async fn open_mode_accepts_valid_names_only() {
        let auth = DevAuth::new(DevConfig {
            open: true,
            keys: vec![],
        });
        assert_eq!(
            auth.authorize(&req("cam1")).await,
            Ok(Authorized {
                channel: "cam1".into()
            })
        );
        assert_eq!(
            auth.authorize(&req("../x")).await,
            Err(Refusal::InvalidName)
        );
    }
}
