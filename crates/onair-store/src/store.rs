//! [`Store`]: the connection pool for either backend, connecting and migrating.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _};
use tracing::debug;

use crate::error::StoreError;
use crate::timing::CallTimes;

/// The file [`Store::open_default`] creates in the data directory.
pub const DEFAULT_SQLITE_FILE: &str = "onair.db";

/// How long a SQLite writer waits for another connection's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a pooled connection before it fails with
/// [`StoreError::Unavailable`]. sqlx's default is 30 s; a publisher or an API client waiting
/// that long on a dead database is worse than a clear error after a few seconds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL's `statement_timeout` for our sessions. Every query we run is small; one that
/// takes this long is stuck behind a lock or a sick server.
const STATEMENT_TIMEOUT: &str = "10s";

/// The longest one store call may take, client side. `statement_timeout` is enforced by the
/// server, so it cannot help when the server or the network stops answering altogether: a
/// query on a connection that went silent would otherwise wait for TCP to give up, minutes
/// later, while holding whatever its caller holds (a chat room's send order, a publish).
pub(crate) const QUERY_DEADLINE: Duration = Duration::from_secs(15);

/// Runs one store call, failing it with an I/O `TimedOut` (so [`StoreError::Unavailable`])
/// once [`QUERY_DEADLINE`] has passed. Dropping the call hands its connection back to sqlx,
/// which pings it before pooling it again and gives it up if that fails; that ping has no
/// deadline of its own, so on a network that went silent the connection's slot stays taken
/// until TCP gives up, and the pool's other slots serve (or time out at acquisition).
pub(crate) async fn within_deadline<T, E: From<sqlx::Error>>(
    calls: &CallTimes,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(QUERY_DEADLINE, call).await;
    calls.observe(started.elapsed());
    match result {
        Ok(result) => result,
        Err(_) => Err(E::from(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the database did not answer within {} s",
                QUERY_DEADLINE.as_secs()
            ),
        )))),
    }
}

/// How long [`Store::close`] waits for connections in use.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(5);

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL, for production.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        })
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The OnAir database: a pool of connections to PostgreSQL or SQLite. Cloning is cheap and
/// shares the pool.
///
/// The repository methods (users, channels, stream keys, live sessions, audit log, settings)
/// are grouped by table in this crate's modules; all of them behave the same on both backends.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// Every call's duration, shared by the clones of this store.
    pub(crate) calls: Arc<CallTimes>,
}

impl fmt::Debug for Store {
    // The pool's own Debug shows its connect options; print only what cannot hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl From<PgPool> for Store {
    fn from(pool: PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
            calls: Arc::default(),
        }
    }
}

impl From<SqlitePool> for Store {
    fn from(pool: SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
            calls: Arc::default(),
        }
    }
}

impl Store {
    /// Connects to `url`: `postgres://…` (or `postgresql://…`) or `sqlite:…`, such as
    /// `sqlite://data/onair.db?mode=rwc` or `sqlite::memory:`.
    ///
    /// One connection is opened at once, so an unreachable database fails here with
    /// [`StoreError::Unavailable`]. SQLite connections enforce foreign keys, wait up to 5 s for
    /// a busy database, and use write-ahead logging for files. An in-memory SQLite database
    /// lives in one connection that the pool keeps open.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "postgres" | "postgresql" => {
                let options =
                    PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
                        backend: Backend::Postgres,
                        source,
                    })?;
                // A query the server cannot finish in time fails (57014, which maps to
                // Unavailable) instead of holding a publish, an API call or a chat room.
                let options = options.options([("statement_timeout", STATEMENT_TIMEOUT)]);
                // The pool retries a refused connection until its acquire timeout and then
                // reports only "pool timed out"; one plain connection first says why
                // ("Connection refused", a bad password, no such database), and at once.
                let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await;
                match probe {
                    Ok(Ok(connection)) => {
                        let _ = connection.close().await;
                    }
                    Ok(Err(e)) => return Err(StoreError::Unavailable(e)),
                    Err(_) => return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
                }
                let pool = PgPoolOptions::new()
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::Unavailable)?;
                debug!(backend = %Backend::Postgres, "connected");
                Ok(pool.into())
            }
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url).map_err(|source| {
                    StoreError::InvalidUrl {
                        backend: Backend::Sqlite,
                        source,
                    }
                })?;
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                Self::open_sqlite(options, in_memory).await
            }
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Opens (creating if needed) the embedded database `data_dir/onair.db`, creating
    /// `data_dir` too: the default when no database URL is configured.
    pub async fn open_default(data_dir: &Path) -> Result<Self, StoreError> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| StoreError::DataDir {
                path: data_dir.to_owned(),
                source,
            })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DEFAULT_SQLITE_FILE))
            .create_if_missing(true);
        Self::open_sqlite(options, false).await
    }

    async fn open_sqlite(
        options: SqliteConnectOptions,
        in_memory: bool,
    ) -> Result<Self, StoreError> {
        let options = options.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT);
        let (options, pool) = if in_memory {
            // Every connection to `sqlite::memory:` shares one database that vanishes with its
            // last connection, and shared-cache writers fail at once instead of waiting: one
            // connection, never retired, avoids both.
            let pool = SqlitePoolOptions::new()
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (options, pool)
        } else {
            // WAL lets readers run beside the one writer; NORMAL is durable across a process
            // crash in WAL mode (sqlite.org/wal.html), losing at most the last commits on
            // power loss.
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            (
                options,
                SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT),
            )
        };
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        debug!(backend = %Backend::Sqlite, in_memory, "connected");
        Ok(pool.into())
    }

    /// Brings the schema up to date with the migrations for this backend
    /// (`migrations/postgres` or `migrations/sqlite`). Safe to run at every start and from
    /// several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
        }
        .map_err(StoreError::Migrate)?;
        debug!(backend = %self.backend(), "migrated");
        Ok(())
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// How long this store's calls (and its clones') have taken.
    pub fn call_times(&self) -> &CallTimes {
        &self.calls
    }

    /// Runs a trivial query: `Ok` means the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Closes every connection, waiting up to 5 s for those in use to be returned
    /// (one stuck on a database that stopped answering must not hold up a shutdown). Later
    /// calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        let closing = async {
            match &self.pool {
                Pool::Postgres(pool) => pool.close().await,
                Pool::Sqlite(pool) => pool.close().await,
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
            tracing::warn!(
                "database connections still in use after {} s; closing without them",
                CLOSE_WAIT.as_secs()
            );
        }
    }
}

/// The current time as the store records it.
pub(crate) fn now() -> DateTime<Utc> {
    db_time(Utc::now())
}

/// PostgreSQL keeps microseconds; SQLite keeps whatever text it is given. Truncating every
/// time the store writes makes both give back the same value.
pub(crate) fn db_time(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_fails_as_unavailable_at_the_deadline() {
        let started = tokio::time::Instant::now();
        let result: Result<(), StoreError> =
            within_deadline(&CallTimes::default(), std::future::pending()).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert_eq!(started.elapsed(), QUERY_DEADLINE);
        // A call that answers in time is passed through.
        let answered: Result<u8, StoreError> =
            within_deadline(&CallTimes::default(), async { Ok(7) }).await;
        assert_eq!(answered.unwrap(), 7);
    }

    #[tokio::test]
    async fn unsupported_schemes_are_refused_without_echoing_the_url() {
        let error = Store::connect("mysql://root:hunter2@localhost/onair")
            .await
            .unwrap_err();
        assert!(matches!(&error, StoreError::UnsupportedUrl { scheme } if scheme == "mysql"));
        assert!(!error.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn an_unreachable_postgres_says_why_not_that_the_pool_timed_out() {
        // Nothing listens on port 9 (discard) of loopback: the connection is refused.
        let error = Store::connect("postgres://postgres:hunter2@127.0.0.1:9/onair")
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        let chain = format!("{}: {}", error, std::error::Error::source(&error).unwrap());
        assert!(chain.to_lowercase().contains("refused"), "{chain}");
        assert!(!chain.contains("pool timed out"), "{chain}");
        assert!(!chain.contains("hunter2"), "{chain}");
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_its_data_in_one_connection() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.count_users().await.unwrap(), 0);
        assert_eq!(format!("{store:?}"), "Store { backend: Sqlite, .. }");
    }

    #[tokio::test]
    async fn the_default_database_is_a_wal_file_enforcing_foreign_keys() {
        let dir = std::env::temp_dir().join(format!("onair-store-unit-{}", std::process::id()));
        let store = Store::open_default(&dir.join("nested")).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("open_default opened {:?}", store.backend());
        };
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        store.close().await;
        let created = dir.join("nested").join(DEFAULT_SQLITE_FILE).is_file();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((journal.as_str(), foreign_keys, created), ("wal", 1, true));
    }

    #[test]
    fn times_are_truncated_to_microseconds() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(db_time(time).timestamp_subsec_nanos(), 123_456_000);
    }
}
