//! Who may publish where. The RTMP ingest asks one [`PublishAuth`]: [`StoreAuth`] checks the
//! signed, revocable keys the platform issues (and falls back to the static keys and open mode
//! of `[dev]`); [`DevAuth`] alone serves setups without accounts.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use onair_auth::VerifyError;

use crate::channel::is_valid_name;
use crate::config::DevConfig;
use crate::platform::Platform;
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
    /// The channel's row, when the key came from the store.
    pub channel_id: Option<i64>,
    /// The key's jti, when the key came from the store; the handle to revoke it by.
    pub key_jti: Option<String>,
}

impl Authorized {
    /// A publish under `channel` without a stored key (`[dev]`).
    pub fn dev(channel: String) -> Self {
        Authorized {
            channel,
            channel_id: None,
            key_jti: None,
        }
    }
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
    /// The key is not one we issued: bad signature, or not a key at all.
    #[error("invalid stream key ({0})")]
    InvalidKey(String),
    /// The key was issued with an expiry that has passed.
    #[error("the stream key has expired; issue a new one")]
    Expired,
    /// The key was revoked (rotated, or revoked by its owner or an admin).
    #[error("the stream key was revoked; use the channel's current key")]
    Revoked,
    /// The key's channel no longer exists.
    #[error("the stream key's channel no longer exists")]
    NoChannel,
    /// The channel's owner is banned.
    #[error("the channel's owner is banned")]
    Banned,
    /// The channel's owner is not a streamer (any more).
    #[error("the channel's owner may not stream (their role is viewer)")]
    NotStreamer,
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
                return Ok(Authorized::dev(channel));
            }
            if self.config.open {
                let name = request.key.expose();
                return if is_valid_name(name) {
                    Ok(Authorized::dev(name.to_owned()))
                } else {
                    Err(Refusal::InvalidName)
                };
            }
            Err(Refusal::UnknownKey)
        })
    }
}

/// Whether `name` has the shape of a signed key (three base64url parts, a JSON header): a
/// channel name never does, since it has no dots.
pub fn looks_like_jwt(name: &str) -> bool {
    name.starts_with("eyJ")
        && name.split('.').count() == 3
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How long a publish waits for the store's answer about its key.
const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Keys issued by the platform, checked against the store; then the `[dev]` keys.
#[derive(Debug)]
pub struct StoreAuth {
    platform: Arc<Platform>,
    dev: DevAuth,
}

impl StoreAuth {
    /// An authoriser over `platform`, with `dev` for static keys and open mode.
    pub fn new(platform: Arc<Platform>, dev: DevConfig) -> Arc<Self> {
        Arc::new(StoreAuth {
            platform,
            dev: DevAuth { config: dev },
        })
    }

    async fn check(&self, token: &str) -> Result<Authorized, Refusal> {
        let claims = onair_auth::verify_stream_key(
            self.platform.signing_key(),
            token,
            std::time::SystemTime::now(),
        )
        .map_err(|e| match e {
            VerifyError::Expired { .. } => Refusal::Expired,
            // The error names the token's length and what is wrong, never the token.
            other => Refusal::InvalidKey(other.to_string()),
        })?;
        let jti = claims.jti.as_str();
        // A database that stops answering on an open connection would otherwise hold the
        // publisher for as long as TCP retransmits; the encoder retries a refused publish.
        let grant = tokio::time::timeout(
            STORE_CHECK_TIMEOUT,
            self.platform.store().publish_grant(jti),
        )
        .await
        .map_err(|_| Refusal::Unavailable("the database did not answer in time".into()))?
        .map_err(|e| Refusal::Unavailable(e.to_string()))?
        .ok_or(Refusal::NoChannel)?;
        if grant.channel_id != claims.channel_id {
            // Only a forged key could get here: ours are signed with the channel they name.
            return Err(Refusal::InvalidKey("the key names another channel".into()));
        }
        if grant.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if grant.owner_banned {
            return Err(Refusal::Banned);
        }
        if !grant.allows_publish() {
            return Err(Refusal::NotStreamer);
        }
        Ok(Authorized {
            channel: grant.channel_slug,
            channel_id: Some(grant.channel_id),
            key_jti: Some(jti.to_owned()),
        })
    }
}

impl PublishAuth for StoreAuth {
    fn is_stream_key(&self, name: &str) -> bool {
        looks_like_jwt(name) || self.dev.is_stream_key(name)
    }

    fn authorize<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Authorized, Refusal>> {
        Box::pin(async move {
            let key = request.key.expose();
            if looks_like_jwt(key) {
                return self.check(key).await;
            }
            self.dev.authorize(request).await
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
            Ok(Authorized::dev("demo".into()))
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
            Ok(Authorized::dev("cam1".into()))
        );
        assert_eq!(
            auth.authorize(&req("../x")).await,
            Err(Refusal::InvalidName)
        );
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use onair_store::{NewChannel, Role, Store};

    fn req(key: &str) -> PublishRequest {
        PublishRequest {
            app: "live".into(),
            key: StreamKey::new(key.into()),
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn issued_keys_publish_until_revoked_banned_or_deleted() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let platform = Platform::with_store(store, &Default::default())
            .await
            .unwrap();
        let owner = platform
            .create_user("erin", "password-1", Role::Streamer)
            .await
            .unwrap();
        let channel = platform
            .store()
            .create_channel(NewChannel {
                slug: "erin".into(),
                title: "t".into(),
                owner_id: owner.id,
                category: String::new(),
                tags: vec![],
            })
            .await
            .unwrap();
        let key = platform
            .issue_stream_key(channel.id, "OBS", None)
            .await
            .unwrap();
        let auth = StoreAuth::new(platform.clone(), DevConfig::default());
        let token = key.token.expose();
        assert!(auth.is_stream_key(token));
        assert!(!auth.is_stream_key("erin"));
        let ok = auth.authorize(&req(token)).await.unwrap();
        assert_eq!(ok.channel, "erin");
        assert_eq!(ok.key_jti.as_deref(), Some(key.row.jti.as_str()));

        // Forged: same claims, signed with another key.
        let other = onair_auth::SigningKey::generate([1; 32]);
        let forged = onair_auth::issue_stream_key(
            &other,
            channel.id,
            crate::platform::random_jti(),
            std::time::SystemTime::now(),
            None,
        )
        .unwrap();
        assert!(matches!(
            auth.authorize(&req(forged.expose())).await,
            Err(Refusal::InvalidKey(_))
        ));
        // Tampered payload.
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil = "eyJzdWIiOiJzdHJlYW1fa2V5IiwiY2giOjk5LCJqdGkiOiIwMCIsImlhdCI6MX0";
        parts[1] = evil;
        assert!(matches!(
            auth.authorize(&req(&parts.join("."))).await,
            Err(Refusal::InvalidKey(_))
        ));
        // Malformed.
        assert!(matches!(
            auth.authorize(&req("eyJ.x.y")).await,
            Err(Refusal::InvalidKey(_))
        ));
        assert_eq!(
            auth.authorize(&req("random-junk")).await,
            Err(Refusal::UnknownKey)
        );
        // Expired.
        let expired = onair_auth::issue_stream_key(
            platform.signing_key(),
            channel.id,
            crate::platform::random_jti(),
            std::time::SystemTime::now() - std::time::Duration::from_secs(7200),
            Some(std::time::Duration::from_secs(3600)),
        )
        .unwrap();
        assert_eq!(
            auth.authorize(&req(expired.expose())).await,
            Err(Refusal::Expired)
        );
        // Signed by us but never recorded (its jti is unknown).
        let unrecorded = onair_auth::issue_stream_key(
            platform.signing_key(),
            channel.id,
            crate::platform::random_jti(),
            std::time::SystemTime::now(),
            None,
        )
        .unwrap();
        assert_eq!(
            auth.authorize(&req(unrecorded.expose())).await,
            Err(Refusal::NoChannel)
        );

        platform
            .store()
            .set_user_banned(owner.id, true)
            .await
            .unwrap();
        assert_eq!(auth.authorize(&req(token)).await, Err(Refusal::Banned));
        platform
            .store()
            .set_user_role(owner.id, Role::Viewer)
            .await
            .unwrap();
        platform
            .store()
            .set_user_banned(owner.id, false)
            .await
            .unwrap();
        assert_eq!(auth.authorize(&req(token)).await, Err(Refusal::NotStreamer));
        platform
            .store()
            .set_user_role(owner.id, Role::Streamer)
            .await
            .unwrap();
        assert!(auth.authorize(&req(token)).await.is_ok());
        platform
            .store()
            .set_user_banned(owner.id, false)
            .await
            .unwrap();
        assert!(platform.revoke_stream_key(&key.row.jti).await.unwrap());
        assert_eq!(auth.authorize(&req(token)).await, Err(Refusal::Revoked));
        for r in [
            Refusal::Revoked,
            Refusal::InvalidKey("x".into()),
            Refusal::Expired,
        ] {
            assert!(!r.to_string().contains(token));
        }
    }
}
