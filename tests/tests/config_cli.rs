//! The configuration as an operator meets it, through the real binary: `ONAIR_*` variables a
//! user's scripts set do not stop the server, a typo in a config variable does (in one line,
//! naming the closest key), `onair config check` names the file, line and key of a mistake and
//! masks secrets, and `onair healthcheck` (the container health check) passes on a running
//! server and fails on a stopped one.
//!
//! Needs nothing but the binary, so these tests never skip.

use std::process::Output;
use std::time::Duration;

use onair_e2e::binary::{Launch, OnairProcess, TempDir, onair_binary};
use tokio::process::Command;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `onair ARGS…` with only `env` (and `RUST_BACKTRACE=1`, so that a backtrace would show).
async fn onair(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(onair_binary().await);
    command
        .env_clear()
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("onair {args:?} did not exit"))
        .expect("running onair")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The single line of stderr, which must be `error: …`.
fn one_error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no backtrace:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onair_variables_of_a_users_scripts_do_not_stop_the_server() {
    let dir = TempDir::new("onair-bin");
    let launch = Launch::default()
        .env("ONAIR_BIN", "/usr/local/bin/onair")
        .env("ONAIR_VERSION", "1.2.3");
    let server = OnairProcess::launch(dir.path(), &launch).await;

    let healthz = server.http_url("/healthz");
    let check = onair(&["healthcheck", &healthz], &[]).await;
    assert!(
        check.status.success(),
        "healthcheck of a running server: {}",
        text(&check.stderr)
    );
    assert_eq!(text(&check.stdout).trim(), format!("{healthz}: ok"));

    let (_, stderr) = server.stop().await;
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("is not a config variable; ignored"))
        .collect();
    assert_eq!(warnings.len(), 2, "one warning per variable:\n{stderr}");
    assert!(warnings.iter().any(|l| l.contains("ONAIR_BIN")), "{stderr}");
    assert!(
        !stderr.contains("/usr/local/bin/onair"),
        "values are not logged"
    );

    let stopped = onair(&["healthcheck", &healthz, "--timeout", "2s"], &[]).await;
    let line = one_error_line(&stopped);
    assert!(line.contains(&healthz), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_a_config_variable_stops_the_start_naming_the_closest_key() {
    let dir = TempDir::new("env-typo");
    let launch = Launch::default().env("ONAIR_HTTP_LISTN", "127.0.0.1:0");
    let (status, stdout, stderr) = OnairProcess::run_to_exit(dir.path(), &launch).await;
    assert!(!status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: loading the configuration: environment variable ONAIR_HTTP_LISTN: no option \
         http.listn; the closest is http.listen (ONAIR_HTTP_LISTEN)"
    );
    assert!(stdout.is_empty(), "nothing was created: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_prints_the_effective_config_masked_or_names_file_line_and_key() {
    let dir = TempDir::new("config-check");
    let secret = "s3cret-signing-key-of-at-least-32-bytes";
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[rtmp]\nchunk_size = 8192\n\n[auth]\nsecret = \"{secret}\"\n"),
    )
    .expect("writing good.toml");
    let out = onair(
        &["config", "check", good.to_str().expect("utf-8 path")],
        &[
            ("ONAIR_HUB_TAKEOVER", "true"),
            ("DATABASE_URL", "postgres://onair:pa55word@db/onair"),
            ("ONAIR_BIN", "x"),
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for line in [
        "chunk_size = 8192",
        "takeover = true",
        "secret = \"[redacted]\"",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    for leaked in [secret, "pa55word"] {
        assert!(
            !stdout.contains(leaked) && !stderr.contains(leaked),
            "{leaked} shown"
        );
    }
    assert!(
        stderr.contains("warning: ONAIR_BIN is not a config variable; ignored"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "configuration valid: {} with ONAIR_HUB_TAKEOVER, DATABASE_URL",
            good.display()
        )),
        "{stderr}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rtmp]\nchunk_size = 8192\nwindow_ack_sise = 5\n").expect("bad.toml");
    let bad_arg = bad.to_str().expect("utf-8 path");
    let out = onair(&["config", "check", bad_arg], &[]).await;
    assert!(out.stdout.is_empty(), "nothing printed on a failure");
    assert_eq!(
        one_error_line(&out),
        format!(
            "error: loading the configuration: config file {bad_arg}:3:1: rtmp.window_ack_sise: \
             unknown key; the closest is rtmp.window_ack_size"
        )
    );

    // The server itself fails the same way on the same file, via --config.
    let out = onair(&["--config", bad_arg], &[]).await;
    assert!(one_error_line(&out).contains(&format!("{bad_arg}:3:1: rtmp.window_ack_sise")));

    let out = onair(&["config", "check", "/nonexistent/onair.toml"], &[]).await;
    assert!(one_error_line(&out).contains("/nonexistent/onair.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_serving_and_config_check_need_the_tls_files_readable() {
    let dir = TempDir::new("tls-unreadable");
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("onair.db").display()
    );
    // Paths the operator cannot read, as a private key only the service user may read is.
    let env = [
        ("ONAIR_STORAGE_DATABASE_URL", database.as_str()),
        ("ONAIR_TLS_CERTIFICATE", "/nonexistent/onair.crt"),
        ("ONAIR_TLS_PRIVATE_KEY", "/nonexistent/onair.key"),
    ];
    for args in [&["migrate"][..], &["user", "list"], &["config"]] {
        let out = onair(args, &env).await;
        assert!(
            out.status.success(),
            "onair {args:?}: {}",
            text(&out.stderr)
        );
    }
    let check = one_error_line(&onair(&["config", "check"], &env).await);
    assert!(check.contains("tls.certificate"), "{check}");
    let serve = one_error_line(&onair(&[], &env).await);
    assert!(serve.contains("tls.certificate"), "{serve}");
}
