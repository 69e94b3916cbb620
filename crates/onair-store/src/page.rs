//! Paging for list queries.

use serde::{Deserialize, Serialize};

/// A window into a list: skip `offset` rows, return at most `limit`.
///
/// The store applies both as given; bounds for user input (for example a largest `limit`) are
/// the API's to check, so it can name the offending field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Rows to skip.
    pub offset: u32,
    /// Most rows to return; `0` returns none (the total is still counted).
    pub limit: u32,
}

impl Page {
    /// The first `limit` rows.
    pub const fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }

    /// A window of `limit` rows starting at `offset`.
    pub const fn new(offset: u32, limit: u32) -> Self {
        Self { offset, limit }
    }

    pub(crate) fn sql_offset(self) -> i64 {
        i64::from(self.offset)
    }

    pub(crate) fn sql_limit(self) -> i64 {
        i64::from(self.limit)
    }
}

impl Default for Page {
    /// The first 50 rows.
    fn default() -> Self {
        Self::first(50)
    }
}

impl crate::Store {
    /// One page of the rows `sql` selects of a channel (`$1` the channel id, `$2` the limit,
    /// `$3` the offset), and the total that `count` (`$1` the channel id) counts: the shape of
    /// every per-channel list.
    pub(crate) async fn channel_page<T>(
        &self,
        sql: &'static str,
        count: &'static str,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<T>, u64), crate::StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
    {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, T>(sql)
                .bind(channel_id)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(count)
                .bind(channel_id)
                .fetch_one(pool)
                .await
        })?;
        Ok((rows, total(count)))
    }
}

/// Converts a SQL `COUNT(*)`, which is never negative, to a total.
pub(crate) fn total(count: i64) -> u64 {
    count.unsigned_abs()
}
