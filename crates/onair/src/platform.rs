//! The platform side of the server: the store, the signing key, and the operations on
//! accounts and keys that the REST API, the CLI and the ingest share. Handlers stay thin;
//! anything that hashes a password, signs a token or must happen in a set order lives here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use onair_auth::{
    AccessClaims, AccessToken, IssueError, Jti, PasswordError, SigningKey, SigningKeyError,
    StreamKeyToken, VerifyError,
};
use onair_store::{Channel, NewChannel, NewUser, Role, Store, StoreError, User};
use rand::{Rng, RngCore};
use tracing::{info, warn};

use crate::config::{AuthConfig, StorageConfig};
use crate::passwords::{HashingError, PasswordHashing};

/// The settings row that holds the generated signing secret (base64).
const SIGNING_KEY_SETTING: &str = "auth.signing_key";

/// Why a platform operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The store refused or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or checking a password failed.
    #[error("password hashing failed: {0}")]
    Password(#[from] PasswordError),
    /// A token could not be signed.
    #[error("cannot sign a token: {0}")]
    Issue(#[from] IssueError),
    /// The signing secret in the store is unusable.
    #[error("the stored signing secret is unusable: {0}")]
    BadSecret(#[from] SigningKeyError),
    /// The channel does not exist.
    #[error("channel {0} not found")]
    NoSuchChannel(i64),
    /// A background task did not finish.
    #[error("a background task failed: {0}")]
    Task(String),
    /// Every password hashing thread stayed busy for `auth.password_hash_wait`.
    #[error("password hashing is busy; retry in {} s", retry_after.as_secs())]
    Busy {
        /// When a retry has a fair chance.
        retry_after: Duration,
    },
}

impl From<HashingError> for PlatformError {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy { retry_after } => PlatformError::Busy { retry_after },
            HashingError::Password(e) => PlatformError::Password(e),
            e => PlatformError::Task(e.to_string()),
        }
    }
}

impl PlatformError {
    /// Whether the cause is the store being unreachable (a 503, not a 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PlatformError::Store(StoreError::Unavailable(_)))
    }
}

/// What a login attempt found.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The name and password match an account that may log in.
    Ok(User),
    /// No such account, or the wrong password: the caller cannot tell which.
    BadCredentials,
    /// The password is right but the account is banned.
    Banned,
}

/// The token of `Authorization: Bearer <token>`. The scheme is case-insensitive (RFC 9110
/// §11.1); anything else is treated as no token at all.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A verified caller of the API.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account, as stored now (role and ban as of this request).
    pub user: User,
    /// The token's claims.
    pub claims: AccessClaims,
}

/// A freshly issued stream key: the row, and the token, which is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The stored record (jti, label, times).
    pub row: onair_store::StreamKey,
    /// The key to paste into OBS. `Debug` prints it redacted.
    pub token: StreamKeyToken,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the first start created, to print once.
#[derive(Debug)]
pub struct Bootstrap {
    /// The admin's login name.
    pub username: String,
    /// The admin's generated password. Shown once; only its hash is stored.
    pub password: onair_auth::Secret<String>,
    /// The demo channel.
    pub channel: Channel,
    /// A key for the demo channel.
    pub key: IssuedKey,
}

/// The store and the signing key, shared by the API, the ingest and the CLI.
pub struct Platform {
    store: Store,
    signing_key: SigningKey,
    auth: AuthConfig,
    hashing: PasswordHashing,
    /// A hash at the configured cost of a password nobody has, checked when a login names no
    /// account, so that such a login costs what a real one does.
    dummy_hash: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("backend", &self.store.backend())
            .field("signing_key", &"[redacted]")
            .finish()
    }
}

impl Platform {
    /// Opens the store named by `storage` (the embedded SQLite file when no URL is set), runs
    /// the migrations, and loads the signing key: from `auth.secret`, else from the store,
    /// else a new random one that is stored for the next start.
    pub async fn open(
        storage: &StorageConfig,
        auth: &AuthConfig,
    ) -> Result<Arc<Platform>, PlatformError> {
        let store = match &storage.database_url {
            Some(url) => Store::connect(url.expose()).await?,
            None => Store::open_default(&storage.data_dir).await?,
        };
        store.migrate().await?;
        Platform::with_store(store, auth).await
    }

    /// Like [`Platform::open`] on a store that is already connected and migrated.
    pub async fn with_store(
        store: Store,
        auth: &AuthConfig,
    ) -> Result<Arc<Platform>, PlatformError> {
        let signing_key = match &auth.secret {
            Some(secret) => SigningKey::from_bytes(secret.expose().as_bytes())?,
            None => {
                let mut random = [0u8; 32];
                rand::rng().fill_bytes(&mut random);
                let fresh = SigningKey::generate(random).to_base64();
                // Two servers starting on one empty database must agree: whoever stores first
                // wins and both read back the same value.
                store
                    .set_setting_if_absent(SIGNING_KEY_SETTING, fresh.expose())
                    .await?;
                let stored = store.setting(SIGNING_KEY_SETTING).await?.ok_or_else(|| {
                    PlatformError::Task("the signing key vanished after it was stored".into())
                })?;
                SigningKey::from_base64(&stored)?
            }
        };
        Ok(Arc::new(Platform {
            store,
            signing_key,
            hashing: PasswordHashing::new(
                auth.password_hash_threads,
                auth.hash_cost(),
                auth.password_hash_wait,
            ),
            auth: auth.clone(),
            dummy_hash: tokio::sync::OnceCell::new(),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The `[auth]` settings.
    pub fn auth_config(&self) -> &AuthConfig {
        &self.auth
    }

    /// The key stream keys and access tokens are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The password hashing threads and their counters.
    pub fn hashing(&self) -> &PasswordHashing {
        &self.hashing
    }

    /// Creates an account with `password` hashed (argon2id, on the hashing threads).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, PlatformError> {
        let password_hash = self.hashing.hash(password.to_owned()).await?;
        Ok(self
            .store
            .create_user(NewUser {
                username: username.to_owned(),
                password_hash,
                role,
            })
            .await?)
    }

    /// Checks a name and password. An unknown name costs the same hash as a known one, so the
    /// time taken does not tell which names exist. A password stored at another cost than
    /// the configured one is hashed again at that cost once it has been proved.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginOutcome, PlatformError> {
        let user = self.store.user_by_name(username).await?;
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => self.dummy_hash().await?,
        };
        let matches = self
            .hashing
            .verify(password.to_owned(), phc.clone())
            .await?;
        Ok(match user {
            Some(u) if matches && u.banned => LoginOutcome::Banned,
            Some(u) if matches => {
                if onair_auth::needs_rehash(&phc, self.hashing.cost()) {
                    self.rehash(&u, password).await;
                }
                LoginOutcome::Ok(u)
            }
            _ => LoginOutcome::BadCredentials,
        })
    }

    /// Stores `password` at the configured cost. Best effort: the login has succeeded either
    /// way, and the next one tries again.
    async fn rehash(&self, user: &User, password: &str) {
        let stored = match self.hashing.hash(password.to_owned()).await {
            Ok(phc) => self
                .store
                .set_user_password_hash(user.id, &phc)
                .await
                .map(drop),
            Err(e) => {
                tracing::debug!(user = user.username, error = %e, "password not rehashed now");
                return;
            }
        };
        match stored {
            Ok(()) => info!(
                user = user.username,
                "password rehashed at the configured cost"
            ),
            Err(e) => warn!(user = user.username, error = %e, "cannot store a rehashed password"),
        }
    }

    /// Sets a new password for `user` and ends every login of the account.
    pub async fn set_password(&self, user: &User, password: &str) -> Result<(), PlatformError> {
        let phc = self.hashing.hash(password.to_owned()).await?;
        self.store.set_user_password_hash(user.id, &phc).await?;
        self.store
            .revoke_user_auth_sessions(user.id, Utc::now())
            .await?;
        Ok(())
    }

    async fn dummy_hash(&self) -> Result<String, PlatformError> {
        let hash = self
            .dummy_hash
            .get_or_try_init(|| self.hashing.hash(format!("{:x}", rand::rng().next_u64())))
            .await?;
        Ok(hash.clone())
    }

    /// Issues an access token for `user` and records its session, so logout and bans can end
    /// it early. Returns the token and when it expires.
    pub async fn issue_access_token(
        &self,
        user: &User,
    ) -> Result<(AccessToken, DateTime<Utc>), PlatformError> {
        let jti = random_jti();
        let now = SystemTime::now();
        let ttl = self.auth.access_token_ttl;
        let token = onair_auth::issue_access_token(
            &self.signing_key,
            user.id,
            user.role.as_str(),
            jti.clone(),
            now,
            ttl,
        )?;
        let expires_at = DateTime::<Utc>::from(now) + ttl;
        self.store
            .create_auth_session(jti.as_str(), user.id, expires_at)
            .await?;
        Ok((token, expires_at))
    }

    /// Verifies a bearer token: signature and expiry, a session that was not ended, and an
    /// account that exists and is not banned. `Ok(None)` means "not authenticated".
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Session>, PlatformError> {
        let claims =
            match onair_auth::verify_access_token(&self.signing_key, bearer, SystemTime::now()) {
                Ok(c) => c,
                Err(
                    VerifyError::Expired { .. }
                    | VerifyError::BadSignature
                    | VerifyError::Malformed { .. }
                    | VerifyError::WrongKind { .. },
                ) => return Ok(None),
                Err(_) => return Ok(None),
            };
        let Some(session) = self.store.auth_session(claims.jti.as_str()).await? else {
            return Ok(None);
        };
        if !session.is_active(Utc::now()) || session.user_id != claims.user_id {
            return Ok(None);
        }
        match self.store.user_by_id(claims.user_id).await? {
            Some(user) if !user.banned => Ok(Some(Session { user, claims })),
            _ => Ok(None),
        }
    }

    /// The signed-in caller of a request that may also come from nobody (a player fetching a
    /// replay): `None` without a valid `Authorization: Bearer` token.
    pub async fn caller(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<Session>, PlatformError> {
        match bearer(headers) {
            Some(token) => self.authenticate(token).await,
            None => Ok(None),
        }
    }

    /// Ends the session of the token with this jti.
    pub async fn logout(&self, jti: &str) -> Result<(), PlatformError> {
        self.store.revoke_auth_session(jti, Utc::now()).await?;
        Ok(())
    }

    /// Issues a stream key for a channel, valid for `ttl` (or `auth.stream_key_ttl` when
    /// `None`; neither set: until revoked).
    pub async fn issue_stream_key(
        &self,
        channel_id: i64,
        label: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedKey, PlatformError> {
        if self.store.channel_by_id(channel_id).await?.is_none() {
            return Err(PlatformError::NoSuchChannel(channel_id));
        }
        let jti = random_jti();
        let now = SystemTime::now();
        let ttl = ttl.or(self.auth.stream_key_ttl);
        let token =
            onair_auth::issue_stream_key(&self.signing_key, channel_id, jti.clone(), now, ttl)?;
        // The row is written after signing succeeds, and the token is handed out only after
        // the row exists: a key is never usable without a record that can revoke it.
        let row = self
            .store
            .create_stream_key(channel_id, jti.as_str(), label)
            .await?;
        Ok(IssuedKey {
            row,
            token,
            expires_at: ttl.map(|ttl| DateTime::<Utc>::from(now) + ttl),
        })
    }

    /// Revokes a key in the store: `true` if this call revoked it. Ending a live publish that
    /// uses it is the server's (`lives::kick_key`); the revocation poll
    /// ends it within a second on every node either way.
    pub async fn revoke_stream_key(&self, jti: &str) -> Result<bool, PlatformError> {
        Ok(self.store.revoke_stream_key(jti, Utc::now()).await?)
    }

    /// On a store with no accounts: creates `admin` with a random password, a `demo` channel
    /// and a key for it. `None` when the store already has accounts.
    pub async fn bootstrap(&self) -> Result<Option<Bootstrap>, PlatformError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let password = random_password();
        let admin = match self.create_user("admin", &password, Role::Admin).await {
            Ok(u) => u,
            // Another node bootstrapped the same database at the same moment.
            Err(PlatformError::Store(StoreError::Conflict { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        let channel = self
            .store
            .create_channel(NewChannel {
                slug: "demo".into(),
                title: "Demo channel".into(),
                owner_id: admin.id,
                category: String::new(),
                tags: vec![],
            })
            .await?;
        let key = self.issue_stream_key(channel.id, "bootstrap", None).await?;
        self.store
            .record_audit(
                None,
                "server.bootstrap",
                &format!("user:{}", admin.id),
                &serde_json::json!({ "channel": channel.slug, "key": key.row.jti }),
            )
            .await?;
        info!(
            user = admin.username,
            channel = channel.slug,
            "first start: created an admin and a demo channel"
        );
        Ok(Some(Bootstrap {
            username: admin.username,
            password: onair_auth::Secret::new(password),
            channel,
            key,
        }))
    }
}

/// Deletes login sessions that expired more than a day ago, hourly, until `shutdown`.
/// Expired sessions decide nothing (the token's own expiry refuses it); the day of slack keeps
/// recent ones for anyone looking into a login problem.
pub async fn housekeeping(platform: Arc<Platform>, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = Utc::now() - chrono::Duration::days(1);
        match platform.store().prune_auth_sessions(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "pruned expired login sessions"),
            Err(e) => tracing::debug!(error = %e, "cannot prune login sessions; will retry"),
        }
    }
}

/// 128 random bits as a jti.
pub fn random_jti() -> Jti {
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    Jti::from_random(random)
}

/// A password for a generated account: 20 characters from an alphabet without look-alikes
/// (about 115 bits), easy to copy from a terminal.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn platform() -> Arc<Platform> {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        Platform::with_store(store, &AuthConfig::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_generated_signing_key_is_stored_and_reused() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let a = Platform::with_store(store.clone(), &AuthConfig::default())
            .await
            .unwrap();
        let b = Platform::with_store(store, &AuthConfig::default())
            .await
            .unwrap();
        assert_eq!(
            a.signing_key().to_base64().expose(),
            b.signing_key().to_base64().expose()
        );
        let user = a
            .create_user("carol", "correct horse", Role::Streamer)
            .await
            .unwrap();
        let (token, _) = a.issue_access_token(&user).await.unwrap();
        assert!(
            b.authenticate(token.expose()).await.unwrap().is_some(),
            "a token survives a restart"
        );
    }

    #[tokio::test]
    async fn login_logout_and_bans() {
        let p = platform().await;
        let user = p
            .create_user("dave", "hunter2hunter2", Role::Viewer)
            .await
            .unwrap();
        assert!(
            matches!(p.login("dave", "hunter2hunter2").await.unwrap(), LoginOutcome::Ok(u) if u.id == user.id)
        );
        assert!(matches!(
            p.login("dave", "wrong").await.unwrap(),
            LoginOutcome::BadCredentials
        ));
        assert!(matches!(
            p.login("nobody", "x").await.unwrap(),
            LoginOutcome::BadCredentials
        ));
        let (token, expires) = p.issue_access_token(&user).await.unwrap();
        assert!(expires > Utc::now());
        let session = p
            .authenticate(token.expose())
            .await
            .unwrap()
            .expect("valid");
        assert_eq!(session.user.id, user.id);
        assert!(p.authenticate("not-a-token").await.unwrap().is_none());

        p.store().set_user_banned(user.id, true).await.unwrap();
        assert!(
            p.authenticate(token.expose()).await.unwrap().is_none(),
            "a ban ends tokens at once"
        );
        assert!(matches!(
            p.login("dave", "hunter2hunter2").await.unwrap(),
            LoginOutcome::Banned
        ));
        p.store().set_user_banned(user.id, false).await.unwrap();
        assert!(p.authenticate(token.expose()).await.unwrap().is_some());

        p.logout(session.claims.jti.as_str()).await.unwrap();
        assert!(
            p.authenticate(token.expose()).await.unwrap().is_none(),
            "logout ends the token"
        );
    }

    #[tokio::test]
    async fn bootstrap_runs_once_and_its_key_verifies() {
        let p = platform().await;
        let first = p.bootstrap().await.unwrap().expect("empty store");
        assert_eq!(first.channel.slug, "demo");
        assert!(
            matches!(p.login("admin", first.password.expose()).await.unwrap(), LoginOutcome::Ok(u) if u.role == Role::Admin)
        );
        let claims = onair_auth::verify_stream_key(
            p.signing_key(),
            first.key.token.expose(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(claims.channel_id, first.channel.id);
        assert!(
            p.bootstrap().await.unwrap().is_none(),
            "only on an empty store"
        );
        assert!(!format!("{first:?}").contains(first.password.expose()));
        assert!(!format!("{first:?}").contains(first.key.token.expose()));
    }

    #[tokio::test]
    async fn a_login_rehashes_a_password_stored_at_another_cost_and_set_password_ends_logins() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let old = Platform::with_store(store.clone(), &AuthConfig::default())
            .await
            .unwrap();
        let user = old
            .create_user("erin", "old cost password", Role::Viewer)
            .await
            .unwrap();
        assert!(user.password_hash.contains("$m=19456,t=2,p=1$"));
        let cheaper = AuthConfig {
            password_hash_kib: 1024,
            password_hash_passes: 3,
            ..AuthConfig::default()
        };
        let new = Platform::with_store(store.clone(), &cheaper).await.unwrap();
        assert!(matches!(
            new.login("erin", "wrong").await.unwrap(),
            LoginOutcome::BadCredentials
        ));
        let unchanged = store.user_by_id(user.id).await.unwrap().unwrap();
        assert_eq!(
            unchanged.password_hash, user.password_hash,
            "only a proved password"
        );
        assert!(matches!(
            new.login("erin", "old cost password").await.unwrap(),
            LoginOutcome::Ok(_)
        ));
        let rehashed = store.user_by_id(user.id).await.unwrap().unwrap();
        assert!(
            rehashed.password_hash.contains("$m=1024,t=3,p=1$"),
            "{}",
            rehashed.password_hash
        );
        assert!(matches!(
            new.login("erin", "old cost password").await.unwrap(),
            LoginOutcome::Ok(_)
        ));

        let (token, _) = new.issue_access_token(&rehashed).await.unwrap();
        new.set_password(&rehashed, "a new password").await.unwrap();
        assert!(new.authenticate(token.expose()).await.unwrap().is_none());
        assert!(matches!(
            new.login("erin", "old cost password").await.unwrap(),
            LoginOutcome::BadCredentials
        ));
        assert!(matches!(
            new.login("erin", "a new password").await.unwrap(),
            LoginOutcome::Ok(_)
        ));
    }

    #[tokio::test]
    async fn keys_for_unknown_channels_are_not_issued() {
        let p = platform().await;
        assert!(matches!(
            p.issue_stream_key(42, "x", None).await,
            Err(PlatformError::NoSuchChannel(42))
        ));
    }
}
