//! `/auth/*`, tokens, the login limit.

use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode, header};
use onair_store::{Role, Store};
use serde_json::json;

use super::{Api, PASSWORD};

async fn login_me_refresh_logout(store: Store) {
    let api = Api::new(store).await;
    api.account("alice", Role::Streamer).await;
    let body = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "ALICE", "password": PASSWORD }),
        )
        .await;
    assert_eq!(body.headers[header::CACHE_CONTROL], "no-store");
    let body = body.ok(StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["role"], "streamer");
    assert!(body["expires_in"].as_u64().unwrap() > 3500);
    assert!(body["user"].get("password_hash").is_none());
    let token = body["access_token"].as_str().unwrap().to_owned();

    let me = api
        .get("/api/v1/auth/me", Some(&token))
        .await
        .ok(StatusCode::OK);
    assert_eq!(me["username"], "alice");

    let refreshed = api
        .call(Method::POST, "/api/v1/auth/refresh", Some(&token), None)
        .await
        .ok(StatusCode::OK);
    let fresh = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    api.get("/api/v1/auth/me", Some(&token))
        .await
        .problem(401, "unauthorized");
    api.get("/api/v1/auth/me", Some(&fresh))
        .await
        .ok(StatusCode::OK);

    let out = api
        .call(Method::POST, "/api/v1/auth/logout", Some(&fresh), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    api.get("/api/v1/auth/me", Some(&fresh))
        .await
        .problem(401, "unauthorized");
    api.call(Method::POST, "/api/v1/auth/logout", Some(&fresh), None)
        .await
        .problem(401, "unauthorized");
}

async fn bad_logins(store: Store) {
    let api = Api::new(store).await;
    api.account("alice", Role::Viewer).await;
    let wrong = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "alice", "password": "not the password" }),
        )
        .await
        .problem(401, "bad-credentials");
    let unknown = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "nobody", "password": "not the password" }),
        )
        .await
        .problem(401, "bad-credentials");
    assert_eq!(
        wrong, unknown,
        "an unknown name looks like a wrong password"
    );

    api.post("/api/v1/auth/login", None, json!({ "username": "alice" }))
        .await
        .invalid(&["password"]);
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": 7, "password": "x" }),
    )
    .await
    .invalid(&["username"]);
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "", "password": "x".repeat(129) }),
    )
    .await
    .invalid(&["username", "password"]);
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "alice", "password": "x", "remember": true }),
    )
    .await
    .invalid(&["remember"]);

    let mut malformed = api.request(Method::POST, "/api/v1/auth/login", None, None);
    malformed
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    *malformed.body_mut() = axum::body::Body::from("{\"username\": ");
    api.send(malformed, "192.0.2.1:1".parse().unwrap())
        .await
        .invalid(&["body"]);

    let mut plain = api.request(Method::POST, "/api/v1/auth/login", None, None);
    *plain.body_mut() = axum::body::Body::from("username=alice");
    api.send(plain, "192.0.2.1:1".parse().unwrap())
        .await
        .problem(415, "unsupported-media-type");

    let mut huge = api.request(Method::POST, "/api/v1/auth/login", None, None);
    huge.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    *huge.body_mut() =
        axum::body::Body::from(format!("{{\"username\": \"{}\"}}", "a".repeat(100_000)));
    api.send(huge, "192.0.2.1:1".parse().unwrap())
        .await
        .problem(413, "payload-too-large");
}

async fn banned_accounts_cannot_log_in_and_their_tokens_stop(store: Store) {
    let api = Api::new(store).await;
    let (user, token) = api.account("mallory", Role::Streamer).await;
    api.get("/api/v1/auth/me", Some(&token))
        .await
        .ok(StatusCode::OK);
    api.store().set_user_banned(user.id, true).await.unwrap();
    api.get("/api/v1/auth/me", Some(&token))
        .await
        .problem(401, "unauthorized");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "mallory", "password": PASSWORD }),
    )
    .await
    .problem(403, "account-banned");
}

async fn tokens_are_checked(store: Store) {
    let api = Api::new(store).await;
    let (user, _) = api.account("alice", Role::Admin).await;

    let missing = api.get("/api/v1/auth/me", None).await;
    assert_eq!(
        missing.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"onair\""
    );
    missing.problem(401, "unauthorized");

    let garbage = api.get("/api/v1/auth/me", Some("not-a-jwt")).await;
    assert_eq!(
        garbage.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"onair\", error=\"invalid_token\""
    );
    garbage.problem(401, "unauthorized");

    let mut basic = api.request(Method::GET, "/api/v1/auth/me", None, None);
    basic
        .headers_mut()
        .insert(header::AUTHORIZATION, "Basic YWxpY2U6eA==".parse().unwrap());
    api.send(basic, "192.0.2.1:1".parse().unwrap())
        .await
        .problem(401, "unauthorized");

    // Expired: issued two hours ago for one hour, with the server's own key and a session row.
    let jti = crate::platform::random_jti();
    let past = SystemTime::now() - Duration::from_secs(7200);
    let expired = onair_auth::issue_access_token(
        api.app.platform.signing_key(),
        user.id,
        "admin",
        jti.clone(),
        past,
        Duration::from_secs(3600),
    )
    .unwrap();
    api.store()
        .create_auth_session(
            jti.as_str(),
            user.id,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    api.get("/api/v1/auth/me", Some(expired.expose()))
        .await
        .problem(401, "unauthorized");

    // Forged: signed with another key.
    let other = onair_auth::SigningKey::generate([1; 32]);
    let forged = onair_auth::issue_access_token(
        &other,
        user.id,
        "admin",
        jti,
        SystemTime::now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    api.get("/api/v1/admin/users", Some(forged.expose()))
        .await
        .problem(401, "unauthorized");

    // A stream key is not an access token.
    let (_, token) = api.account("bob", Role::Streamer).await;
    api.channel(&token, "bob").await;
    let key = api.key(&token, "bob", "obs").await;
    api.get("/api/v1/auth/me", key["stream_key"].as_str())
        .await
        .problem(401, "unauthorized");
}

async fn registration(store: Store) {
    let closed = Api::new(store.clone()).await;
    closed
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "newbie", "password": "long enough" }),
        )
        .await
        .problem(403, "registration-closed");

    let api = Api::with_config(store, |c| c.auth.registration = true).await;
    let reply = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "newbie", "password": "long enough" }),
        )
        .await;
    assert_eq!(reply.headers[header::LOCATION], "/api/v1/auth/me");
    let body = reply.ok(StatusCode::CREATED);
    assert_eq!(body["user"]["role"], "viewer");
    let token = body["access_token"].as_str().unwrap();
    api.get("/api/v1/auth/me", Some(token))
        .await
        .ok(StatusCode::OK);

    api.post(
        "/api/v1/auth/register",
        None,
        json!({ "username": "NEWBIE", "password": "long enough" }),
    )
    .await
    .problem(409, "conflict");
    api.post(
        "/api/v1/auth/register",
        None,
        json!({ "username": "a b", "password": "short" }),
    )
    .await
    .invalid(&["username", "password"]);
}

async fn logins_are_limited_per_address_and_never_lock_an_account(store: Store) {
    let api = Api::with_config(store, |c| c.auth.login_attempts_per_minute = 3).await;
    api.account("alice", Role::Viewer).await;
    let login = |user: &str, password: &str| {
        api.request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": user, "password": password })),
        )
    };
    let a = "192.0.2.1:1".parse().unwrap();
    let b = "192.0.2.2:1".parse().unwrap();
    let c = "192.0.2.3:1".parse().unwrap();
    let d = "192.0.2.4:1".parse().unwrap();

    // Three failures for alice from address a, and one more from d: past the account's
    // burst, so held a moment, but answered.
    for _ in 0..3 {
        api.send(login("alice", "wrong password"), a)
            .await
            .problem(401, "bad-credentials");
    }
    api.send(login("alice", "wrong password"), d)
        .await
        .problem(401, "bad-credentials");
    // The right password from another address gets in at once: no account is locked.
    api.send(login("alice", PASSWORD), b)
        .await
        .ok(StatusCode::OK);
    // Address a has used its three attempts, whatever the account.
    let held = api.send(login("bob", "wrong password"), a).await;
    let wait: u64 = held.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    held.problem(429, "rate-limited");
    api.send(login("alice", PASSWORD), a)
        .await
        .problem(429, "rate-limited");
    // Address b may still try other accounts.
    api.send(login("bob", "wrong password"), b)
        .await
        .problem(401, "bad-credentials");
    // Successful logins count against an address too.
    api.account("carol", Role::Viewer).await;
    for _ in 0..3 {
        api.send(login("carol", PASSWORD), c)
            .await
            .ok(StatusCode::OK);
    }
    api.send(login("carol", PASSWORD), c)
        .await
        .problem(429, "rate-limited");
}

onair_store::store_test!(
    login_me_refresh_logout,
    bad_logins,
    banned_accounts_cannot_log_in_and_their_tokens_stop,
    tokens_are_checked,
    registration,
    logins_are_limited_per_address_and_never_lock_an_account,
);

/// Access tokens, passwords and stream keys never reach the logs, at any level.
async fn secrets_stay_out_of_the_logs(store: Store) {
    let logs = capture();
    let api = Api::new(store).await;
    api.account("alice", Role::Streamer).await;
    let login = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "alice", "password": PASSWORD }),
        )
        .await
        .ok(StatusCode::OK);
    let token = login["access_token"].as_str().unwrap().to_owned();
    api.channel(&token, "alice").await;
    let key = api.key(&token, "alice", "obs").await;
    let jti = key["jti"].as_str().unwrap();
    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/me/channels/alice/keys/{jti}/rotate"),
            Some(&token),
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    api.get("/api/v1/auth/me", Some("forged.token.text"))
        .await
        .problem(401, "unauthorized");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "alice", "password": "hunter2-wrong" }),
    )
    .await
    .problem(401, "bad-credentials");

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("stream key issued"),
        "the capture works: {logs}"
    );
    for secret in [
        token.as_str(),
        key["stream_key"].as_str().unwrap(),
        rotated["stream_key"].as_str().unwrap(),
        PASSWORD,
        "hunter2-wrong",
        "forged.token.text",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// Every line logged by this test binary from the first call on, from every thread: the
/// requests' tasks, tracked tasks and the blocking pool included (a thread-local subscriber
/// would see only the test's own thread). Installed once as the global default.
fn capture() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test in this binary installs a global subscriber");
        logs
    })
    .clone()
}

struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

onair_store::store_test!(secrets_stay_out_of_the_logs);
