//! Logins under hostile load, against the real binary over real sockets (issue #18): a flood
//! of logins keeps the server's memory bounded and signed-in requests answered, and wrong
//! passwords for an account from other addresses never lock its owner out.
//!
//! Clients come from many loopback addresses (a socket bound to 127.0.0.x before it
//! connects), because the server counts logins per address. No assertion is on time: the
//! flood's figures are printed, and `onair-login-bench` measures them properly.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use onair_e2e::binary::{Launch, OnairProcess, TempDir, parse_bootstrap};
use onair_e2e::http;

const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// What the issue asks of a login flood: the server stays under this (it reached 6.2 GB).
const RSS_BOUND: u64 = 300 * 1024 * 1024;

/// `VmHWM` (peak resident set) and `VmRSS` of `pid`, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn client(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

async fn login(
    http: SocketAddr,
    from: Ipv4Addr,
    username: &str,
    password: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let (status, retry_after, text) =
        http::post_json_from(from, http, "/api/v1/auth/login", &body, &[], IO_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("login as {username} from {from}: {e:#}"));
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, retry_after, json)
}

async fn admin_token(server: &OnairProcess, password: &str) -> String {
    let http: SocketAddr = server.http_addr.parse().expect("an address");
    let (status, _, json) = login(http, client(1), "admin", password).await;
    assert_eq!(status, 200, "{json}");
    json["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_keeps_memory_bounded_and_signed_in_requests_answered() {
    let data = TempDir::new("login-flood");
    // The default cost (19 MiB per hash) and one hashing thread per core, as shipped.
    let server = OnairProcess::launch(data.path(), &Launch::default()).await;
    let (password, _) = parse_bootstrap(&server.bootstrap_block().await);
    let token = admin_token(&server, &password).await;
    let http: SocketAddr = server.http_addr.parse().expect("an address");
    let pid = server.pid();

    // 300 logins for names nobody has, from 30 addresses: 10 each, the per-address limit,
    // so every one of them reaches the password check.
    const ADDRESSES: u8 = 30;
    const PER_ADDRESS: usize = 10;
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut logins = Vec::new();
    for a in 0..ADDRESSES {
        for i in 0..PER_ADDRESS {
            let answered = answered.clone();
            logins.push(tokio::spawn(async move {
                let name = format!("nobody-{a}-{i}");
                let answer = login(http, client(2 + a), &name, "not the password").await;
                answered.fetch_add(1, Ordering::SeqCst);
                answer
            }));
        }
    }
    let total = logins.len();

    // Signed-in requests while the logins queue for the hashing threads: each must be
    // answered before the last login is, which only a starved runtime would fail.
    let mut signed_in = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        let response = http::request(
            "GET",
            &server.http_url("/api/v1/auth/me"),
            &[("Authorization", &format!("Bearer {token}"))],
            IO_TIMEOUT,
        )
        .await
        .expect("a signed-in request");
        let latency = sent.elapsed();
        let done = answered.load(Ordering::SeqCst);
        assert_eq!(response.status, 200);
        signed_in.push((latency, done));
    }

    let mut peak_rss_seen = 0;
    let (mut unauthorized, mut busy) = (0, 0);
    for handle in logins {
        peak_rss_seen = peak_rss_seen.max(memory(pid).1);
        let (status, retry_after, json) = handle.await.expect("a login task");
        match status {
            401 => unauthorized += 1,
            503 => {
                assert_eq!(json["type"], "https://onair.dev/problems/busy", "{json}");
                assert!(retry_after.is_some(), "a busy answer says when to retry");
                busy += 1;
            }
            other => panic!("a login answered {other}: {json}"),
        }
    }
    let flood = started.elapsed();
    let (hwm, rss) = memory(pid);
    println!(
        "{total} logins in {flood:?}: {unauthorized} × 401, {busy} × 503 busy; server peak RSS {} MB, now {} MB",
        hwm / (1024 * 1024),
        rss / (1024 * 1024)
    );
    for (latency, done) in &signed_in {
        println!("signed-in request: {latency:?}, with {done} of {total} logins answered");
    }
    assert_eq!(unauthorized + busy, total);
    assert!(
        unauthorized > 0,
        "the hashing threads checked some of the flood"
    );
    for (latency, done) in &signed_in {
        assert!(
            *done < total,
            "a signed-in request ({latency:?}) waited behind the whole login flood"
        );
    }
    assert!(
        hwm <= RSS_BOUND,
        "the server's peak RSS was {} MB, over {} MB",
        hwm / (1024 * 1024),
        RSS_BOUND / (1024 * 1024)
    );
    assert!(peak_rss_seen <= hwm);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_other_addresses_never_lock_the_admin_out() {
    let data = TempDir::new("login-lockout");
    let server = OnairProcess::start(data.path()).await;
    let (password, _) = parse_bootstrap(&server.bootstrap_block().await);
    let http: SocketAddr = server.http_addr.parse().expect("an address");

    // Ten wrong passwords for admin from ten addresses (the reproduction), then
    // three more past the account's burst: held a moment each, still answered.
    for a in 0..13 {
        let (status, _, json) = login(http, client(10 + a), "admin", "a wrong guess").await;
        assert_eq!(status, 401, "{json}");
    }
    // An address that keeps guessing is refused, with Retry-After: its own limit.
    let mut refused = None;
    for i in 0..20 {
        let (status, retry_after, _) =
            login(http, client(30), &format!("guess-{i}"), "another guess").await;
        if status == 429 {
            refused = retry_after;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(
        refused.is_some(),
        "an address past its limit is refused, with Retry-After"
    );
    let (status, _, _) = login(http, client(30), "admin", &password).await;
    assert_eq!(
        status, 429,
        "the limit is the address's, whatever the account"
    );

    // The right password from a fresh address gets in at once.
    let (status, _, json) = login(http, client(40), "admin", &password).await;
    assert_eq!(status, 200, "the admin was locked out: {json}");
    assert!(json["access_token"].is_string());
    // And from an address that only ever guessed wrong for another account.
    let (status, _, _) = login(http, client(41), "someone-else", "wrong").await;
    assert_eq!(status, 401);
    let (status, _, json) = login(http, client(41), "admin", &password).await;
    assert_eq!(status, 200, "{json}");
    server.stop().await;
}
