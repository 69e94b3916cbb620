//! [`StoreError`] and the mapping of constraint violations onto it.

use std::path::PathBuf;

use sqlx::error::DatabaseError;

use crate::store::Backend;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique constraint refused the row: the name, slug or id is taken (HTTP 409).
    #[error("{what} already exists (constraint {constraint})")]
    Conflict {
        /// What collided, with its value, e.g. `username "alice"`.
        what: String,
        /// The constraint as the database names it: PostgreSQL gives the constraint or index
        /// name (`users_username_key`), SQLite the columns or index (`users.username`).
        constraint: String,
    },
    /// The row, or a row it refers to, does not exist (HTTP 404, or 422 for a reference).
    #[error("{what} not found")]
    NotFound {
        /// What was missing, with its key, e.g. `user 42`.
        what: String,
    },
    /// The database URL names neither PostgreSQL nor SQLite.
    #[error(
        "unsupported database URL scheme {scheme:?}: expected postgres://, postgresql:// or sqlite:"
    )]
    UnsupportedUrl {
        /// The part before the first `:`; never the rest, which may hold a password.
        scheme: String,
    },
    /// The database URL could not be parsed.
    #[error("invalid {backend} database URL")]
    InvalidUrl {
        /// The backend the scheme named.
        backend: Backend,
        /// sqlx's reason.
        #[source]
        source: sqlx::Error,
    },
    /// The SQLite data directory could not be created.
    #[error("cannot create data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database cannot be reached: connecting failed, the connection broke or the pool
    /// timed out (HTTP 503, `/readyz` fails).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error: a bug in a query or a value the database refused.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A migration failed or the database holds migrations this build does not know.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(ref db) if is_unavailable(&**db) => Self::Unavailable(error),
            other => Self::Database(other),
        }
    }
}

/// Database errors that mean "not now" rather than "not this": the caller should answer 503 and
/// may retry. PostgreSQL: class 08 (connection exception), 53300 (too many connections),
/// 57P01–57P03 (admin or crash shutdown, cannot connect now), 57014 (statement timeout).
/// SQLite: `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with their extended codes, which remain
/// after the busy timeout has run out.
fn is_unavailable(error: &dyn DatabaseError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    let code = code.as_ref();
    if code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03" | "57014") {
        return true;
    }
    // SQLite codes are numbers; the primary code is the low byte of an extended one.
    code.parse::<i32>().is_ok_and(|n| matches!(n & 0xFF, 5 | 6))
}

/// Unique violations: PostgreSQL SQLSTATE 23505; SQLite extended codes 2067
/// (`SQLITE_CONSTRAINT_UNIQUE`) and 1555 (`SQLITE_CONSTRAINT_PRIMARYKEY`).
const UNIQUE_VIOLATION: [&str; 3] = ["23505", "2067", "1555"];

/// Foreign key violations: PostgreSQL SQLSTATE 23503; SQLite 787 (`SQLITE_CONSTRAINT_FOREIGNKEY`).
const FOREIGN_KEY_VIOLATION: [&str; 2] = ["23503", "787"];

/// Maps constraint violations of a query's result onto [`StoreError`] variants with context, in
/// the manner of realworld-axum-sqlx's `on_constraint`.
pub(crate) trait ResultExt<T> {
    /// A unique violation becomes [`StoreError::Conflict`] naming `what`.
    fn on_constraint(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;

    /// A foreign key violation becomes [`StoreError::NotFound`] naming the missing `what`.
    fn on_missing_reference(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: Into<StoreError>> ResultExt<T> for Result<T, E> {
    fn on_constraint(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|error| match error.into() {
            StoreError::Database(sqlx::Error::Database(db))
                if has_code(&*db, &UNIQUE_VIOLATION) =>
            {
                StoreError::Conflict {
                    what: what(),
                    constraint: constraint_name(&*db),
                }
            }
            other => other,
        })
    }

    fn on_missing_reference(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|error| match error.into() {
            StoreError::Database(sqlx::Error::Database(db))
                if has_code(&*db, &FOREIGN_KEY_VIOLATION) =>
            {
                StoreError::NotFound { what: what() }
            }
            other => other,
        })
    }
}

fn has_code(error: &dyn DatabaseError, codes: &[&str]) -> bool {
    error
        .code()
        .is_some_and(|code| codes.contains(&code.as_ref()))
}

/// PostgreSQL reports the constraint by name. SQLite only says so in its message:
/// `UNIQUE constraint failed: users.username` or `… failed: index 'users_username_key'`.
fn constraint_name(error: &dyn DatabaseError) -> String {
    if let Some(name) = error.constraint() {
        return name.to_owned();
    }
    let message = error.message();
    message
        .split_once("constraint failed: ")
        .map_or(message, |(_, name)| name)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }

    /// A database error with just a code, as a driver reports it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "code {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn busy_and_shutting_down_databases_are_unavailable() {
        let map = |code| StoreError::from(sqlx::Error::Database(Box::new(Coded(code))));
        // SQLite BUSY, BUSY_SNAPSHOT (517), LOCKED, LOCKED_SHAREDCACHE (262); PostgreSQL
        // connection failure, too many connections, shutdown, statement timeout.
        for code in [
            "5", "517", "6", "262", "08006", "53300", "57P01", "57P03", "57014",
        ] {
            assert!(matches!(map(code), StoreError::Unavailable(_)), "{code}");
        }
        // Constraint violations and syntax errors are ours or the caller's, not an outage.
        for code in ["23505", "2067", "787", "42601", "1", "19"] {
            assert!(matches!(map(code), StoreError::Database(_)), "{code}");
        }
    }

    #[test]
    fn other_errors_pass_through_the_constraint_mapping() {
        let result: Result<(), sqlx::Error> = Err(sqlx::Error::PoolClosed);
        assert!(matches!(
            result.on_constraint(|| "user".into()),
            Err(StoreError::Unavailable(_))
        ));
        let result: Result<(), sqlx::Error> = Err(sqlx::Error::RowNotFound);
        assert!(matches!(
            result.on_missing_reference(|| "user".into()),
            Err(StoreError::Database(_))
        ));
    }

    #[test]
    fn messages_name_the_offending_value() {
        let error = StoreError::Conflict {
            what: "username \"alice\"".into(),
            constraint: "users_username_key".into(),
        };
        assert_eq!(
            error.to_string(),
            "username \"alice\" already exists (constraint users_username_key)"
        );
        let error = StoreError::UnsupportedUrl {
            scheme: "mysql".into(),
        };
        assert_eq!(
            error.to_string(),
            "unsupported database URL scheme \"mysql\": expected postgres://, postgresql:// or sqlite:"
        );
    }
}
