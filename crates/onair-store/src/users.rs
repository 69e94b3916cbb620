//! Accounts: [`User`], [`Role`] and the `users` table.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Store, now};

/// Names containing the pattern `$1`, ignoring case; all names when `$1` is NULL. `lower` on
/// both sides because LIKE is case-sensitive in PostgreSQL; `\` is declared the escape so the
/// pattern means the same in both dialects.
macro_rules! user_search {
    () => {
        r"($1 IS NULL OR lower(username) LIKE lower($1) ESCAPE '\')"
    };
}

macro_rules! user_columns {
    () => {
        "id, username, password_hash, role, banned, created_at"
    };
}

/// What an account may do. Stored as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, channels and keys of everyone.
    Admin,
    /// Owns channels and their stream keys.
    Streamer,
    /// Watches and chats.
    Viewer,
}

impl Role {
    /// The stored name: `admin`, `streamer` or `viewer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Streamer => "streamer",
            Self::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of `admin`, `streamer` or `viewer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {value:?}: expected admin, streamer or viewer")]
pub struct UnknownRole {
    /// The name given.
    pub value: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "admin" => Ok(Self::Admin),
            "streamer" => Ok(Self::Streamer),
            "viewer" => Ok(Self::Viewer),
            _ => Err(UnknownRole {
                value: value.to_owned(),
            }),
        }
    }
}

// A role is TEXT in both schemas, so it borrows `str`'s SQL type on every backend.
impl<DB: Database> Type<DB> for Role
where
    str: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Role
where
    &'q str: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <&'q str as Encode<'q, DB>>::encode(self.as_str(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Role
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(<&'r str as Decode<'r, DB>>::decode(value)?.parse()?)
    }
}

/// An account, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// The login name, as first written; unique regardless of case.
    pub username: String,
    /// The argon2id hash in PHC form. Never serialized, and redacted from `Debug`.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// A banned account cannot log in or publish.
    pub banned: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("role", &self.role)
            .field("banned", &self.banned)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A new account for [`Store::create_user`].
#[derive(Clone)]
pub struct NewUser {
    /// The login name; must not match an existing one regardless of case.
    pub username: String,
    /// The argon2id hash in PHC form.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("role", &self.role)
            .finish()
    }
}

/// Accounts.
impl Store {
    /// Creates an account, not banned.
    ///
    /// [`StoreError::Conflict`] when the name is taken, in any case: `Alice` and `alice` are one
    /// name.
    pub async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
            user_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role)
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("username {:?}", user.username))
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// The account with this name, in any case.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(username) = lower($1)"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(username)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// One page of accounts in creation order, and how many there are in all.
    ///
    /// `search` keeps the names that contain it, ignoring case; `%` and `_` in it match
    /// themselves.
    pub async fn list_users(
        &self,
        search: Option<&str>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            user_search!(),
            " ORDER BY id LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = concat!("SELECT COUNT(*) FROM users WHERE ", user_search!());
        let pattern = search.map(|s| format!("%{}%", escape_like(s)));
        let users = with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(&pattern)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(COUNT)
                .bind(&pattern)
                .fetch_one(pool)
                .await
        })?;
        Ok((users, total(count)))
    }

    /// Changes an account's role; [`StoreError::NotFound`] for an unknown id.
    pub async fn set_user_role(&self, id: i64, role: Role) -> Result<User, StoreError> {
        const SQL: &str = concat!(
            "UPDATE users SET role = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        );
        with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(id)
                .bind(role)
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| user_not_found(id))
    }

    /// Bans or unbans an account; [`StoreError::NotFound`] for an unknown id.
    pub async fn set_user_banned(&self, id: i64, banned: bool) -> Result<User, StoreError> {
        const SQL: &str = concat!(
            "UPDATE users SET banned = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        );
        with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(id)
                .bind(banned)
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| user_not_found(id))
    }

    /// Replaces an account's password hash (a PHC string); [`StoreError::NotFound`] for an
    /// unknown id. Ending the account's logins is the caller's choice
    /// ([`Store::revoke_user_auth_sessions`]).
    pub async fn set_user_password_hash(
        &self,
        id: i64,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        const SQL: &str = concat!(
            "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        );
        with_pool!(self, |pool| {
            sqlx::query_as::<_, User>(SQL)
                .bind(id)
                .bind(password_hash)
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| user_not_found(id))
    }

    /// How many accounts exist (zero on first start).
    pub async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await
        })?;
        Ok(total(count))
    }
}

pub(crate) fn user_not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: format!("user {id}"),
    }
}

/// Makes `%`, `_` and the escape `\` match themselves in a LIKE pattern.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::Admin, Role::Streamer, Role::Viewer] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!(
            "Admin".parse::<Role>().unwrap_err().to_string(),
            "unknown role \"Admin\": expected admin, streamer or viewer"
        );
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(escape_like("plain"), "plain");
    }

    #[test]
    fn password_hashes_stay_out_of_debug_and_json() {
        let user = User {
            id: 1,
            username: "alice".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            role: Role::Viewer,
            banned: false,
            created_at: DateTime::UNIX_EPOCH,
        };
        assert!(!format!("{user:?}").contains("argon2id"));
        assert!(!serde_json::to_string(&user).unwrap().contains("argon2id"));
        let new = NewUser {
            username: "alice".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            role: Role::Viewer,
        };
        assert!(!format!("{new:?}").contains("argon2id"));
    }
}
