//! The operator commands (`onair migrate`, `onair user …`, `onair channel …`, `onair key …`)
//! as real processes, on both backends: an SQLite file in a fresh data directory, and a fresh
//! PostgreSQL schema (`ONAIR_TEST_POSTGRES`; skipped without it on a developer's machine,
//! failing under `CI=true`). What a command did is checked through the library on the same
//! database; what it printed is checked for the one secret it may show, and only where it may.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onair::config::{AuthConfig, StorageConfig};
use onair::platform::{LoginOutcome, Platform};
use onair::secret::SecretText;
use onair_store::testing::{TestDb, TestLocation};
use onair_store::{Page, Role};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Longest one command may take; it never comes near in a passing run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The `onair` binary with the environment of an operator whose configuration names one
/// database.
struct Cli {
    storage: StorageConfig,
}

impl Cli {
    /// An operator whose configuration names `db`.
    fn on(db: &TestDb) -> Cli {
        let storage = match &db.location {
            TestLocation::Sqlite { dir } => StorageConfig {
                database_url: None,
                data_dir: dir.clone(),
            },
            TestLocation::Postgres { url, .. } => StorageConfig {
                database_url: Some(SecretText::new(url.clone())),
                ..StorageConfig::default()
            },
            other => panic!("no CLI set-up for {other:?}"),
        };
        Cli { storage }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_onair"));
        // Only what the test sets: a DATABASE_URL or ONAIR_* of the machine must not leak in.
        command
            .env_clear()
            .env("ONAIR_LOG", "warn")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &self.storage.database_url {
            Some(url) => command.env("ONAIR_STORAGE_DATABASE_URL", url.expose()),
            None => command.env("ONAIR_STORAGE_DATA_DIR", &self.storage.data_dir),
        };
        command
    }

    /// Runs `onair ARGS…` with nothing on stdin.
    async fn run(&self, args: &[&str]) -> Run {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        let child = command.spawn().expect("spawning onair");
        finish(args, child).await
    }

    /// Runs `onair ARGS…` with `input` on stdin.
    async fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut command = self.command(args);
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("spawning onair");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("writing stdin");
        drop(stdin);
        finish(args, child).await
    }

    /// The same database through the library, to check what the commands did.
    async fn platform(&self) -> Arc<Platform> {
        Platform::open(&self.storage, &AuthConfig::default())
            .await
            .expect("opening the database the commands used")
    }
}

/// What one command did.
#[derive(Debug)]
struct Run {
    args: String,
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_ok(self) -> Run {
        assert!(self.ok, "onair {} failed: {self:#?}", self.args);
        self
    }

    /// Asserts exit status 1 and a one-line `error: …` on stderr containing `says`.
    #[track_caller]
    fn expect_error(self, says: &str) -> Run {
        assert_eq!(self.code, Some(1), "onair {}: {self:#?}", self.args);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line: {self:#?}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(says),
            "onair {}: expected an error saying {says:?}: {self:#?}",
            self.args
        );
        self
    }

    fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

async fn finish(args: &[&str], child: tokio::process::Child) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("onair {} did not finish", args.join(" ")))
        .expect("waiting for onair");
    Run {
        args: args.join(" "),
        ok: status.success(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

async fn accounts_are_created_listed_and_banned(db: TestDb) {
    let cli = Cli::on(&db);
    let created = cli
        .run(&["user", "create", "alice", "--admin"])
        .await
        .expect_ok();
    let lines = created.stdout_lines();
    assert_eq!(lines.len(), 1, "the password alone on stdout: {created:#?}");
    let password = lines[0].to_owned();
    assert_eq!(password.len(), 20, "a generated password: {created:#?}");
    assert!(
        created.stderr.contains("created admin account \"alice\""),
        "{created:#?}"
    );
    assert!(!created.stderr.contains(&password), "{created:#?}");

    cli.run(&["user", "create", "ALICE"])
        .await
        .expect_error("user name \"ALICE\" is taken");
    cli.run(&["user", "create", "a b"])
        .await
        .expect_error("invalid user name");

    let own_password = "correct horse battery";
    let bob = cli
        .run_with_stdin(
            &[
                "user",
                "create",
                "bob",
                "--role",
                "viewer",
                "--password-stdin",
            ],
            &format!("{own_password}\n"),
        )
        .await
        .expect_ok();
    assert!(bob.stdout.is_empty(), "nothing to show: {bob:#?}");
    cli.run_with_stdin(&["user", "create", "carl", "--password-stdin"], "short\n")
        .await
        .expect_error("8 to 128 characters");

    let platform = cli.platform().await;
    match platform.login("alice", &password).await.expect("login") {
        LoginOutcome::Ok(u) => assert_eq!(u.role, Role::Admin),
        other => panic!("the printed password logs alice in: {other:?}"),
    }
    match platform.login("bob", own_password).await.expect("login") {
        LoginOutcome::Ok(u) => assert_eq!(u.role, Role::Viewer),
        other => panic!("bob's password from stdin works: {other:?}"),
    }

    let list = cli.run(&["user", "list"]).await.expect_ok();
    let rows = list.stdout_lines();
    assert_eq!(rows.len(), 3, "a header and two accounts: {list:#?}");
    assert!(rows[0].starts_with("ID") && rows[0].contains("BANNED"));
    assert!(
        rows[1].contains("alice") && rows[1].contains("admin"),
        "{list:#?}"
    );
    assert!(
        rows[2].contains("bob") && rows[2].contains("viewer"),
        "{list:#?}"
    );

    let (token, _) = platform
        .issue_access_token(&platform.store().user_by_name("bob").await.unwrap().unwrap())
        .await
        .expect("a login token for bob");
    cli.run(&["user", "ban", "bob"]).await.expect_ok();
    assert!(matches!(
        platform.login("bob", own_password).await.expect("login"),
        LoginOutcome::Banned
    ));
    assert!(
        platform
            .authenticate(token.expose())
            .await
            .expect("authenticate")
            .is_none(),
        "a ban ends the account's logins"
    );
    let banned = cli
        .run(&["user", "list", "--search", "BO"])
        .await
        .expect_ok();
    assert_eq!(banned.stdout_lines().len(), 2, "{banned:#?}");
    assert!(banned.stdout_lines()[1].contains("yes"), "{banned:#?}");
    cli.run(&["user", "unban", "bob"]).await.expect_ok();
    cli.run(&["user", "role", "bob", "streamer"])
        .await
        .expect_ok();
    let bob = platform.store().user_by_name("bob").await.unwrap().unwrap();
    assert!(!bob.banned);
    assert_eq!(bob.role, Role::Streamer);
    cli.run(&["user", "ban", "nobody"])
        .await
        .expect_error("no user named \"nobody\"");

    let (audit, _) = platform
        .store()
        .list_audit(Page::first(50))
        .await
        .expect("audit log");
    let mut actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "user.ban",
            "user.create",
            "user.create",
            "user.role",
            "user.unban"
        ]
    );
    assert!(audit.iter().all(|e| e.actor_id.is_none()), "{audit:#?}");
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.to_string().contains(&password)),
        "{audit:#?}"
    );
    platform.store().close().await;
}

async fn channels_and_keys_are_set_up_listed_and_revoked(db: TestDb) {
    let cli = Cli::on(&db);
    cli.run_with_stdin(
        &["user", "create", "carol", "--password-stdin"],
        "carols password\n",
    )
    .await
    .expect_ok();
    cli.run_with_stdin(
        &[
            "user",
            "create",
            "vic",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "vics password\n",
    )
    .await
    .expect_ok();
    cli.run(&[
        "channel",
        "create",
        "carol-live",
        "--owner",
        "carol",
        "--title",
        "Carol live",
    ])
    .await
    .expect_ok();
    cli.run(&["channel", "create", "carol-live", "--owner", "carol"])
        .await
        .expect_error("channel \"carol-live\" already exists");
    cli.run(&["channel", "create", "Carol!", "--owner", "carol"])
        .await
        .expect_error("invalid channel name");
    cli.run(&["channel", "create", "vic-live", "--owner", "vic"])
        .await
        .expect_error("is a viewer");
    cli.run(&["channel", "create", "x-live", "--owner", "nobody"])
        .await
        .expect_error("no user named \"nobody\"");
    let channels = cli.run(&["channel", "list"]).await.expect_ok();
    assert_eq!(channels.stdout_lines().len(), 2, "{channels:#?}");
    assert!(channels.stdout_lines()[1].contains("carol-live  carol  Carol live"));

    let issued = cli
        .run(&["key", "issue", "carol-live", "--label", "OBS at home"])
        .await
        .expect_ok();
    let lines = issued.stdout_lines();
    assert_eq!(lines.len(), 1, "the key alone on stdout: {issued:#?}");
    let key = lines[0].to_owned();
    assert!(!issued.stderr.contains(&key), "{issued:#?}");
    assert!(
        issued.stderr.contains("rtmp://HOST:1935/live"),
        "the RTMP URL hint: {issued:#?}"
    );

    let platform = cli.platform().await;
    let channel = platform
        .store()
        .channel_by_slug("carol-live")
        .await
        .unwrap()
        .expect("the channel");
    let claims = onair_auth::verify_stream_key(platform.signing_key(), &key, SystemTime::now())
        .expect("a key the server accepts: signed with the stored secret");
    assert_eq!(claims.channel_id, channel.id);
    assert_eq!(claims.expires_at, None, "no --ttl: until revoked");
    let jti = claims.jti.as_str().to_owned();
    assert!(
        issued.stderr.contains(&jti),
        "the jti is named: {issued:#?}"
    );

    let week = cli
        .run(&["key", "issue", "carol-live", "--ttl", "7d"])
        .await
        .expect_ok();
    let weekly = onair_auth::verify_stream_key(
        platform.signing_key(),
        week.stdout.trim_end(),
        SystemTime::now(),
    )
    .expect("the second key");
    let lifetime = weekly
        .expires_at
        .expect("an expiry")
        .duration_since(weekly.issued_at)
        .expect("expires after it was issued");
    assert_eq!(lifetime, Duration::from_secs(7 * 86_400));
    cli.run(&["key", "issue", "carol-live", "--ttl", "5s"])
        .await
        .expect_error("--ttl must be between 1 minute and 10 years");
    cli.run(&["key", "issue", "nowhere"])
        .await
        .expect_error("no channel \"nowhere\"");

    let list = cli.run(&["key", "list", "carol-live"]).await.expect_ok();
    let rows = list.stdout_lines();
    assert_eq!(rows.len(), 3, "a header and two keys: {list:#?}");
    assert!(rows[0].contains("LAST USED") && rows[0].contains("REVOKED"));
    let row = rows
        .iter()
        .find(|r| r.contains(&jti))
        .expect("the key's row");
    assert!(row.contains("OBS at home"), "{list:#?}");
    assert!(row.trim_end().ends_with('-'), "not revoked: {list:#?}");
    assert!(!list.stdout.contains(&key), "never the key: {list:#?}");

    cli.run(&["key", "revoke", &jti]).await.expect_ok();
    let revoked = platform
        .store()
        .stream_key_by_jti(&jti)
        .await
        .unwrap()
        .expect("the key row");
    assert!(revoked.revoked_at.is_some());
    let again = cli.run(&["key", "revoke", &jti]).await.expect_ok();
    assert!(again.stderr.contains("already revoked"), "{again:#?}");
    let list = cli.run(&["key", "list", "carol-live"]).await.expect_ok();
    let row = list
        .stdout_lines()
        .into_iter()
        .find(|r| r.contains(&jti))
        .expect("the key's row")
        .to_owned();
    assert!(!row.trim_end().ends_with('-'), "revoked: {list:#?}");

    // A key pasted where the jti goes is refused without being echoed.
    let pasted = cli
        .run(&["key", "revoke", &key])
        .await
        .expect_error("not a jti");
    assert!(!pasted.stderr.contains(&key), "{pasted:#?}");
    cli.run(&["key", "revoke", &"0".repeat(32)])
        .await
        .expect_error("no stream key with jti");

    let (audit, _) = platform
        .store()
        .list_audit(Page::first(50))
        .await
        .expect("audit log");
    let count = |action: &str| audit.iter().filter(|e| e.action == action).count();
    assert_eq!(count("channel.create"), 1);
    assert_eq!(count("key.issue"), 2);
    assert_eq!(count("key.revoke"), 1, "revoking twice records once");
    let issue = audit
        .iter()
        .find(|e| e.action == "key.issue" && e.target == format!("key:{jti}"))
        .expect("the first key's issue entry");
    assert_eq!(issue.actor_id, None);
    assert_eq!(issue.detail["channel"], "carol-live");
    assert!(
        audit.iter().all(|e| !e.detail.to_string().contains(&key)),
        "{audit:#?}"
    );
    platform.store().close().await;
}

async fn migrate_says_which_database_and_never_its_password(db: TestDb) {
    let cli = Cli::on(&db);
    let migrated = cli.run(&["migrate"]).await.expect_ok();
    match &cli.storage.database_url {
        None => {
            let file = cli.storage.data_dir.join("onair.db");
            assert_eq!(
                migrated.stdout.trim_end(),
                format!(
                    "SQLite database {}: migrations applied; the schema is up to date",
                    file.display()
                )
            );
            assert!(file.exists());
        }
        Some(url) => {
            assert!(
                migrated.stdout.starts_with("PostgreSQL database \"")
                    && migrated.stdout.contains("migrations applied"),
                "{migrated:#?}"
            );
            assert!(!migrated.stdout.contains("search_path"), "{migrated:#?}");
            // The test server trusts local connections, so a password in the URL is never
            // asked for: it must still never be printed.
            let cli = Cli {
                storage: StorageConfig {
                    database_url: Some(SecretText::new(with_password(url.expose(), "pw-4cd1e9"))),
                    ..StorageConfig::default()
                },
            };
            let again = cli.run(&["migrate"]).await.expect_ok();
            assert!(!again.stdout.contains("pw-4cd1e9"), "{again:#?}");
            assert!(!again.stderr.contains("pw-4cd1e9"), "{again:#?}");
        }
    }
    // Running it again is harmless.
    cli.run(&["migrate"]).await.expect_ok();

    let unreachable = Cli {
        storage: StorageConfig {
            database_url: Some(SecretText::new(
                "postgres://onair:pw-77aa01@127.0.0.1:9/onair".into(),
            )),
            ..StorageConfig::default()
        },
    };
    let failed = unreachable
        .run(&["migrate"])
        .await
        .expect_error("PostgreSQL database \"onair\" on 127.0.0.1:9");
    assert!(!failed.stderr.contains("pw-77aa01"), "{failed:#?}");
    // Why, once: not the pool's "timed out", and not the I/O error twice.
    assert_eq!(
        failed.stderr.matches("Connection refused").count(),
        1,
        "{failed:#?}"
    );
    assert!(!failed.stderr.contains("pool timed out"), "{failed:#?}");
}

async fn a_lost_password_is_replaced_and_the_accounts_logins_end(db: TestDb) {
    let cli = Cli::on(&db);
    let created = cli
        .run(&["user", "create", "admin", "--admin"])
        .await
        .expect_ok();
    let old = created.stdout_lines()[0].to_owned();
    let platform = cli.platform().await;
    let admin = platform
        .store()
        .user_by_name("admin")
        .await
        .unwrap()
        .unwrap();
    let (token, _) = platform.issue_access_token(&admin).await.unwrap();

    let reset = cli.run(&["user", "password", "admin"]).await.expect_ok();
    let lines = reset.stdout_lines();
    assert_eq!(lines.len(), 1, "the password alone on stdout: {reset:#?}");
    let new = lines[0].to_owned();
    assert_eq!(new.len(), 20, "{reset:#?}");
    assert_ne!(new, old);
    assert!(!reset.stderr.contains(&new), "{reset:#?}");
    assert!(matches!(
        platform.login("admin", &old).await.unwrap(),
        LoginOutcome::BadCredentials
    ));
    assert!(matches!(
        platform.login("admin", &new).await.unwrap(),
        LoginOutcome::Ok(u) if u.role == Role::Admin
    ));
    assert!(
        platform
            .authenticate(token.expose())
            .await
            .unwrap()
            .is_none(),
        "a new password ends the account's logins"
    );

    let chosen = "a password of my own";
    let from_stdin = cli
        .run_with_stdin(
            &["user", "password", "ADMIN", "--password-stdin"],
            &format!("{chosen}\n"),
        )
        .await
        .expect_ok();
    assert!(from_stdin.stdout.is_empty(), "{from_stdin:#?}");
    assert!(matches!(
        platform.login("admin", chosen).await.unwrap(),
        LoginOutcome::Ok(_)
    ));
    cli.run(&["user", "password", "nobody"])
        .await
        .expect_error("no user named \"nobody\"");

    let (audit, _) = platform.store().list_audit(Page::first(50)).await.unwrap();
    let resets = audit.iter().filter(|e| e.action == "user.password").count();
    assert_eq!(resets, 2, "{audit:#?}");
    let text = format!("{audit:?}");
    assert!(!text.contains(&new) && !text.contains(chosen), "{text}");
    platform.store().close().await;
}

onair_store::store_test!(
    db:
    a_lost_password_is_replaced_and_the_accounts_logins_end,
    accounts_are_created_listed_and_banned,
    channels_and_keys_are_set_up_listed_and_revoked,
    migrate_says_which_database_and_never_its_password,
);

/// `url` with `password` in its userinfo (user `postgres` when it names none).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or("postgres"), host),
        None => ("postgres", authority),
    };
    format!("{scheme}://{user}:{password}@{host}/{path}")
}
