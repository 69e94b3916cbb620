//! Login sessions: one [`AuthSession`] per access token, named by the token's `jti`. The token
//! is never stored; the row only says whether it still counts.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::store::{Store, db_time, now};

macro_rules! auth_session_columns {
    () => {
        "jti, user_id, created_at, expires_at, revoked_at"
    };
}

/// The record of one issued access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuthSession {
    /// The token's JWT id.
    pub jti: String,
    /// Whose token it is.
    pub user_id: i64,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// When it was ended early (logout, refresh, ban).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl AuthSession {
    /// Whether a token of this session is still accepted at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Login sessions.
impl Store {
    /// Records a newly issued access token.
    ///
    /// [`StoreError::Conflict`] when the jti is already recorded; [`StoreError::NotFound`] when
    /// the user does not exist.
    pub async fn create_auth_session(
        &self,
        jti: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<AuthSession, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO auth_sessions (jti, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING ",
            auth_session_columns!()
        );
        let created_at = now();
        let expires_at = db_time(expires_at);
        with_pool!(self, |pool| {
            sqlx::query_as::<_, AuthSession>(SQL)
                .bind(jti)
                .bind(user_id)
                .bind(created_at)
                .bind(expires_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("auth session jti {jti:?}"))
        .on_missing_reference(|| format!("user {user_id}"))
    }

    /// The session with this jti, ended or not.
    pub async fn auth_session(&self, jti: &str) -> Result<Option<AuthSession>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            auth_session_columns!(),
            " FROM auth_sessions WHERE jti = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, AuthSession>(SQL)
                .bind(jti)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Ends one session at `at`: `true` if this call ended it.
    pub async fn revoke_auth_session(
        &self,
        jti: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE auth_sessions SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL";
        let at = db_time(at);
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(jti)
                .bind(at)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Ends every open session of a user at `at` (a ban, a password change); returns how many.
    pub async fn revoke_user_auth_sessions(
        &self,
        user_id: i64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const SQL: &str =
            "UPDATE auth_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
        let at = db_time(at);
        Ok(with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(user_id)
                .bind(at)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?)
    }

    /// Deletes sessions that expired before `before`; returns how many. Expired rows decide
    /// nothing (the token's own expiry refuses it), so pruning them keeps the table small.
    pub async fn prune_auth_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM auth_sessions WHERE expires_at < $1";
        let before = db_time(before);
        Ok(with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(before)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?)
    }
}
