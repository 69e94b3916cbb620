//! `onair migrate`: brings the database schema up to date, as the server does at start-up, so
//! an operator can run it on its own before a deploy.

use anyhow::Context;
use onair::config::StorageConfig;
use onair_store::{DEFAULT_SQLITE_FILE, Store};

/// Runs the migrations of the configured database and says which one it was.
pub async fn run(storage: &StorageConfig) -> anyhow::Result<()> {
    let target = describe(storage);
    let store = match &storage.database_url {
        Some(url) => Store::connect(url.expose()).await,
        None => Store::open_default(&storage.data_dir).await,
    }
    .with_context(|| format!("opening {target}"))?;
    let migrated = store
        .migrate()
        .await
        .with_context(|| format!("migrating {target}"));
    store.close().await;
    migrated?;
    println!("{target}: migrations applied; the schema is up to date");
    Ok(())
}

/// Which database `storage` names, safe to print: the backend and where it is, never the
/// user name, password or parameters of a URL.
pub fn describe(storage: &StorageConfig) -> String {
    match &storage.database_url {
        None => format!(
            "SQLite database {}",
            storage.data_dir.join(DEFAULT_SQLITE_FILE).display()
        ),
        Some(url) => describe_url(url.expose()),
    }
}

fn describe_url(url: &str) -> String {
    let (scheme, rest) = url.split_once(':').unwrap_or((url, ""));
    // Query parameters may carry a password (`?password=…`), and userinfo always may.
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => {
            let rest = rest.trim_start_matches("//");
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            let host = if host.is_empty() { "localhost" } else { host };
            format!("PostgreSQL database {path:?} on {host}")
        }
        "sqlite" => {
            let path = rest.trim_start_matches("//");
            if path == ":memory:" || path.is_empty() {
                "in-memory SQLite database".to_owned()
            } else {
                format!("SQLite database {path}")
            }
        }
        // Config validation refuses other schemes; never echo what we cannot parse.
        _ => "database".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair::secret::SecretText;

    fn with_url(url: &str) -> String {
        describe(&StorageConfig {
            database_url: Some(SecretText::new(url.to_owned())),
            ..StorageConfig::default()
        })
    }

    #[test]
    fn descriptions_name_the_place_and_never_a_credential() {
        assert_eq!(
            with_url("postgres://onair:s3cret@db.internal:5432/onair?sslmode=require"),
            "PostgreSQL database \"onair\" on db.internal:5432"
        );
        assert_eq!(
            with_url("postgresql://u:p%40ss@10.0.0.5/live?password=other"),
            "PostgreSQL database \"live\" on 10.0.0.5"
        );
        assert_eq!(
            with_url("postgres:///test?host=/run/postgresql&password=x"),
            "PostgreSQL database \"test\" on localhost"
        );
        assert_eq!(
            with_url("sqlite://data/o.db?mode=rwc"),
            "SQLite database data/o.db"
        );
        assert_eq!(with_url("sqlite::memory:"), "in-memory SQLite database");
        let default = describe(&StorageConfig::default());
        assert!(default.starts_with("SQLite database data"), "{default}");
        for text in [
            with_url("postgres://onair:s3cret@db.internal:5432/onair?sslmode=require"),
            with_url("postgresql://u:p%40ss@10.0.0.5/live?password=other"),
        ] {
            for secret in ["s3cret", "p%40ss", "other", "onair:"] {
                assert!(!text.contains(secret), "{text} shows {secret}");
            }
        }
    }
}
