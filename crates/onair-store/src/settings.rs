//! Server settings kept with the data, such as the generated signing secret.

use crate::error::StoreError;
use crate::store::Store;

/// Settings: a key-value table for values the server generates once and must keep across
/// restarts. Values may be secrets: they are never logged here.
impl Store {
    /// The value stored under `key`, if any.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Stores `value` under `key` unless a value is there already, and returns the stored
    /// value: `value` if this call stored it, otherwise the existing one.
    ///
    /// Race-safe: when several servers start at once against one database, each generates a
    /// secret, exactly one is stored and all of them get that one back.
    pub async fn set_setting_if_absent(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        // The insert is atomic in both databases; settings are never deleted, so the row read
        // next is the one that won.
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        self.setting(key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("setting {key:?}"),
            })
    }

    /// Stores `value` under `key`, replacing any value there (a setting an admin changes,
    /// such as the replay retention policy).
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}
