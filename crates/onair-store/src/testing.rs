//! Test support (feature `test-support`): run one async test case against both backends.
//!
//! Write each case once as `async fn name(store: Store)` and list it in [`store_test!`](crate::store_test):
//!
//! ```no_run
//! use onair_store::{Store, store_test};
//!
//! async fn counts_users(store: Store) {
//!     assert_eq!(store.count_users().await.unwrap(), 0);
//! }
//!
//! store_test!(counts_users);
//! # fn main() {}
//! ```
//!
//! This expands into `counts_users::postgres` and `counts_users::sqlite`, two `#[test]`s that
//! each get a fresh, migrated database:
//! - **PostgreSQL** connects to the URL in `ONAIR_TEST_POSTGRES` (for example
//!   `postgres://postgres@127.0.0.1:5432/test`) and works in a schema of its own, dropped
//!   afterwards, so tests run in parallel. Without the variable the test prints
//!   `skipped: ONAIR_TEST_POSTGRES not set` and passes on a developer's machine, but fails
//!   when `CI=true`: CI never skips.
//! - **SQLite** opens `onair.db` in a directory of its own under the system temp directory,
//!   removed afterwards, with the settings [`Store::open_default`] uses.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};
use tokio::runtime::Runtime;

use crate::Store;

/// The variable holding the PostgreSQL URL for tests. Test-only: the server never reads it.
pub const POSTGRES_URL_VAR: &str = "ONAIR_TEST_POSTGRES";

/// Connections per test database: enough for the concurrency cases, few enough that many
/// tests in parallel stay far below PostgreSQL's default `max_connections` of 100.
const MAX_CONNECTIONS: u32 = 4;

/// Expands each `async fn name(store: Store)` into `name::postgres` and `name::sqlite` tests.
///
/// See the [module documentation](crate::testing). The calling crate needs `onair-store` with
/// the `test-support` feature as a dev-dependency; nothing else.
///
/// `store_test!(db: name, …)` does the same for `async fn name(db: TestDb)`, a case that also
/// needs to know where the database is ([`TestDb::location`]), to hand it to a process.
#[macro_export]
macro_rules! store_test {
    (db: $($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn postgres() {
                $crate::testing::run_postgres_db(super::$case);
            }

            #[test]
            fn sqlite() {
                $crate::testing::run_sqlite_db(super::$case);
            }
        }
    )+};
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn postgres() {
                $crate::testing::run_postgres(super::$case);
            }

            #[test]
            fn sqlite() {
                $crate::testing::run_sqlite(super::$case);
            }
        }
    )+};
}

/// Whether this run is CI (`CI=true` or `CI=1`), where a missing database fails the test.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The PostgreSQL URL from [`POSTGRES_URL_VAR`], or `None` after printing
/// `skipped: ONAIR_TEST_POSTGRES not set`.
///
/// # Panics
///
/// When the variable is missing and [`is_ci`]: CI never skips.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if is_ci() => panic!(
            "{POSTGRES_URL_VAR} not set, and CI=true: set it to a PostgreSQL URL such as \
             postgres://postgres@127.0.0.1:5432/test; CI never skips a test"
        ),
        _ => {
            println!("skipped: {POSTGRES_URL_VAR} not set");
            None
        }
    }
}

/// Where a test's database is, for a case that hands it to another process.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TestLocation {
    /// `onair.db` in this directory.
    Sqlite {
        /// The data directory.
        dir: PathBuf,
    },
    /// The test server, in a schema of the test's own.
    Postgres {
        /// A URL whose `search_path` option selects the schema.
        url: String,
        /// The schema, which a process must not print.
        schema: String,
    },
}

/// A fresh, migrated database for one test case, and where it is.
#[derive(Clone, Debug)]
pub struct TestDb {
    /// The store, open on the database.
    pub store: Store,
    /// Where the database is.
    pub location: TestLocation,
}

/// Runs `case` against a fresh PostgreSQL schema (see the module documentation).
///
/// # Panics
///
/// When `case` panics, when the database cannot be prepared, or as [`postgres_url`] does.
pub fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    run_postgres_db(|db| case(db.store));
}

/// Runs `case` against a fresh SQLite file (see the module documentation).
///
/// # Panics
///
/// When `case` panics or the database cannot be prepared.
pub fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    run_sqlite_db(|db| case(db.store));
}

/// [`run_postgres`] for a case that takes the [`TestDb`].
///
/// # Panics
///
/// As [`run_postgres`].
pub fn run_postgres_db<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = postgres_url() else {
        return;
    };
    let runtime = runtime();
    let db = runtime.block_on(PgSchema::create(&url));
    let test_db = TestDb {
        store: db.store.clone(),
        location: TestLocation::Postgres {
            url: schema_url(&url, &db.schema),
            schema: db.schema.clone(),
        },
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(case(test_db));
    }));
    runtime.block_on(db.remove());
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

/// [`run_sqlite`] for a case that takes the [`TestDb`].
///
/// # Panics
///
/// As [`run_sqlite`].
pub fn run_sqlite_db<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("onair-store-test-{}", unique_suffix()));
    let runtime = runtime();
    let store = runtime.block_on(async {
        let store = Store::open_default(&dir)
            .await
            .unwrap_or_else(|e| panic!("cannot open SQLite in {}: {e:?}", dir.display()));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating SQLite: {e:?}"));
        store
    });
    let test_db = TestDb {
        store: store.clone(),
        location: TestLocation::Sqlite { dir: dir.clone() },
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(case(test_db));
    }));
    runtime.block_on(store.close());
    remove_dir(dir);
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

/// Runs `sql` (one statement) on the store's database, for a test that must put the database
/// where no store call would: a damaged schema, say, to see what a caller gets when every
/// query fails.
///
/// # Errors
///
/// What the database says about `sql`.
pub async fn execute(store: &Store, sql: &str) -> Result<(), crate::StoreError> {
    with_pool!(store, |pool| sqlx::query(sql).execute(pool).await.map(drop))?;
    Ok(())
}

/// `base` with a `search_path` option selecting `schema`, in the form libpq and sqlx read.
fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A schema of its own in the test database, reached through `search_path`.
struct PgSchema {
    admin: PgConnection,
    schema: String,
    store: Store,
}

impl PgSchema {
    async fn create(url: &str) -> Self {
        let schema = format!("onair_test_{}", unique_suffix());
        let mut admin = PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e:?}"));
        admin
            .execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e:?}"));
        let options = PgConnectOptions::from_str(url)
            .unwrap_or_else(|e| panic!("invalid {POSTGRES_URL_VAR}: {e:?}"))
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e:?}"));
        let store = Store::from(pool);
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating PostgreSQL schema {schema}: {e:?}"));
        Self {
            admin,
            schema,
            store,
        }
    }

    async fn remove(mut self) {
        self.store.close().await;
        let dropped = self
            .admin
            .execute(format!("DROP SCHEMA \"{}\" CASCADE", self.schema).as_str())
            .await;
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
        // A failure to say goodbye leaves nothing behind: the server ends the session anyway.
        let _ = self.admin.close().await;
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// Unique among concurrent tests: the process id tells processes apart, the counter tests
/// within one, and the clock runs that reused a process id.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}_{n}_{nanos}", std::process::id())
}

fn remove_dir(dir: PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove test directory {}: {e}", dir.display());
    }
}
