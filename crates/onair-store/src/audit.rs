//! The audit log: who did which admin action, to what, and when.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Store, now};

macro_rules! audit_columns {
    () => {
        "id, actor_id, action, target, detail, created_at"
    };
}

/// One recorded action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Its id; ids grow in recording order.
    pub id: i64,
    /// The user who acted; `None` for the server itself or the CLI.
    pub actor_id: Option<i64>,
    /// What was done, e.g. `user.ban`, `key.revoke`.
    pub action: String,
    /// What it was done to, e.g. `user:42`, `channel:demo`.
    pub target: String,
    /// Anything else worth keeping, as JSON. Never a secret.
    pub detail: serde_json::Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// The audit log.
impl Store {
    /// Records an action; [`StoreError::NotFound`] when `actor_id` names no user.
    pub async fn record_audit(
        &self,
        actor_id: Option<i64>,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<AuditEntry, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO audit_log (actor_id, action, target, detail, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            audit_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, AuditEntry>(SQL)
                .bind(actor_id)
                .bind(action)
                .bind(target)
                .bind(detail)
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_missing_reference(|| format!("user {}", actor_id.unwrap_or_default()))
    }

    /// One page of the log, newest first, and how many entries there are in all.
    pub async fn list_audit(&self, page: Page) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2"
        );
        let entries = with_pool!(self, |pool| {
            sqlx::query_as::<_, AuditEntry>(SQL)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
                .fetch_one(pool)
                .await
        })?;
        Ok((entries, total(count)))
    }
}
