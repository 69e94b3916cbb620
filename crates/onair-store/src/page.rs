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

/// Converts a SQL `COUNT(*)`, which is never negative, to a total.
pub(crate) fn total(count: i64) -> u64 {
    count.unsigned_abs()
}
