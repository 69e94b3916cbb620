//! RTMPS and HTTPS with real clients: ffmpeg publishes over `rtmps://` and ffprobe plays it
//! back over `rtmps://` and HTTPS HTTP-FLV, with certificates from a CA made in the test;
//! chat clients talk over `wss://`.
//! Peers that do not speak TLS, or do not trust our certificate, are refused without
//! disturbing a publish on the same port; a reload (SIGHUP's work, and SIGHUP itself on the
//! real binary) swaps the certificate for new connections while a publish keeps going.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use onair::config::Config;
use onair_e2e::binary::{Launch, OnairProcess, TempDir};
use onair_e2e::tls::{IssuedCert, TestCa, connect, presented};
use onair_e2e::{Ffmpeg, TestServer, ffprobe, require_ffmpeg, wait_until};
use onair_store::{NewChannel, Role};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const PUBLISH_SECONDS: u32 = 30;
const LIVE_TIMEOUT: Duration = Duration::from_secs(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A server whose `[tls]` points at a certificate of `ca` in `dir`.
async fn tls_server(ca: &TestCa, dir: &TempDir, https: bool) -> (TestServer, IssuedCert) {
    let cert = ca.issue(dir.path(), "server");
    let files = cert.clone();
    let server = TestServer::start(move |c| {
        c.tls.certificate = Some(files.certificate);
        c.tls.private_key = Some(files.private_key);
        c.tls.https = https;
    })
    .await;
    (server, cert)
}

/// The configuration the server runs with, as a reload would load it again.
fn running_config(server: &TestServer) -> Config {
    server.state().config.clone()
}

/// Sends what a plain RTMP client starts with (C0 + C1) and reads until the server closes.
/// `true` when it closed within the timeout without answering RTMP (S0 is byte 3).
async fn plain_rtmp_is_refused(addr: SocketAddr) -> bool {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    if tcp.write_all(&c0c1).await.is_err() {
        return true;
    }
    let mut got = Vec::new();
    match tokio::time::timeout(IO_TIMEOUT, tcp.read_to_end(&mut got)).await {
        // A reset after the TLS alert is a close too.
        Ok(_) => got.first() != Some(&3),
        Err(_) => false,
    }
}

#[tokio::test]
async fn rtmps_publish_and_play_with_ffmpeg_and_plain_rtmp_on_the_tls_port_is_refused() {
    if !require_ffmpeg() {
        return;
    }
    let dir = TempDir::new("onair-tls");
    let ca = TestCa::new();
    let (server, cert) = tls_server(&ca, &dir, false).await;
    let rtmps = server.rtmps_addr.expect("rtmps listens");
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.rtmps_url(&server.key), PUBLISH_SECONDS);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "no live over rtmps; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );

    // Plain RTMP, garbage and a client of another CA on the TLS port: each refused, the
    // publish unharmed.
    assert!(
        plain_rtmp_is_refused(rtmps).await,
        "plain RTMP got an RTMP answer on the TLS port"
    );
    let metrics = server.state().metrics.clone();
    assert!(
        wait_until(IO_TIMEOUT, || metrics
            .peer_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1)
        .await,
        "the refused handshake is counted as a peer error"
    );
    let stranger = TestCa::new();
    let refused = connect(rtmps, &stranger.root()).await;
    assert!(
        refused.is_err(),
        "a client trusting another CA completed the handshake"
    );
    let trusted = connect(rtmps, &ca.root())
        .await
        .expect("a client of our CA");
    assert_eq!(presented(&trusted), cert.leaf);
    drop(trusted);
    assert!(ffmpeg.is_running(), "ffmpeg stopped: {}", ffmpeg.stderr());
    assert!(server.hub().is_live(&server.channel));

    let probe = ffprobe(&server.rtmps_url(&server.channel), 3, PROBE_TIMEOUT).await;
    assert!(probe.success, "rtmps play failed: {probe:#?}");
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{probe:#?}");
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "{probe:#?}");
    assert!(
        probe.video_packets >= 50,
        "too few video packets: {probe:#?}"
    );
    assert_eq!(probe.first_video_packet_keyframe, Some(true), "{probe:#?}");

    // Plain RTMP on its own port is untouched by TLS.
    let plain = ffprobe(&server.play_url(&server.channel), 1, PROBE_TIMEOUT).await;
    assert!(plain.success, "plain rtmp play failed: {plain:#?}");
    assert!(ffmpeg.is_running(), "ffmpeg stopped: {}", ffmpeg.stderr());
    ffmpeg.kill().await;
    assert!(server.shutdown().await);
}

#[tokio::test]
async fn https_serves_http_flv_and_refuses_plain_http() {
    if !require_ffmpeg() {
        return;
    }
    let dir = TempDir::new("onair-https");
    let ca = TestCa::new();
    let (server, cert) = tls_server(&ca, &dir, true).await;
    let mut ffmpeg =
        Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), PUBLISH_SECONDS);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "ffmpeg said:\n{}",
        ffmpeg.stderr()
    );

    let mut tls = connect(server.http_addr, &ca.root())
        .await
        .expect("https handshake");
    assert_eq!(
        presented(&tls),
        cert.leaf,
        "HTTPS serves the [tls] certificate"
    );
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, tls.read_to_end(&mut answer))
        .await
        .expect("the answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let url = format!("https://{}/live/{}.flv", server.http_addr, server.channel);
    let probe = ffprobe(&url, 3, PROBE_TIMEOUT).await;
    assert!(probe.success, "https flv play failed: {probe:#?}");
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{probe:#?}");
    assert!(probe.video_packets >= 50, "{probe:#?}");

    // Plain HTTP on the HTTPS port gets no HTTP answer, only a close.
    let mut tcp = TcpStream::connect(server.http_addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(IO_TIMEOUT, tcp.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "the server kept a plain HTTP client open");
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP was answered");
    assert!(ffmpeg.is_running(), "ffmpeg stopped: {}", ffmpeg.stderr());
    ffmpeg.kill().await;
    assert!(server.shutdown().await);
}

/// Chat over HTTPS. The room writes only plain TCP sockets itself (issue 13); a TLS
/// client's frames go through its own task, which must still deliver the history, the
/// room's broadcasts and a sender's ack after its own message.
#[tokio::test]
async fn chat_over_wss_delivers_history_broadcasts_and_acks() {
    let dir = TempDir::new("onair-wss");
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &dir, true).await;
    let platform = server.platform();
    let owner = platform
        .create_user("owner", "password-123", Role::Streamer)
        .await
        .unwrap();
    let (token, _) = platform.issue_access_token(&owner).await.unwrap();
    platform
        .store()
        .create_channel(NewChannel {
            slug: "secure".into(),
            title: "secure".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let url = "wss://localhost/api/v1/channels/secure/chat";
    let mut clients = Vec::new();
    for _ in 0..2 {
        let tls = connect(server.http_addr, &ca.root())
            .await
            .expect("https handshake");
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket handshake over tls");
        clients.push(ws);
    }
    let sender = &mut clients[0];
    let auth = json!({"type": "auth", "v": 1, "token": token.expose()});
    sender.send(Message::text(auth.to_string())).await.unwrap();
    let chat = json!({"type": "chat", "v": 1, "text": "over tls", "nonce": "n1"});
    sender.send(Message::text(chat.to_string())).await.unwrap();
    for (i, ws) in clients.iter_mut().enumerate() {
        let mut types = Vec::new();
        // The sender's last frame is its ack; the other client's is the message.
        let last = if i == 0 { "ack" } else { "chat" };
        while types.last().map(String::as_str) != Some(last) {
            let frame = tokio::time::timeout(IO_TIMEOUT, ws.next())
                .await
                .expect("a frame in time")
                .expect("the socket stays open")
                .expect("a frame");
            let Message::Text(text) = frame else { continue };
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            let kind = frame["type"].as_str().unwrap_or_default().to_owned();
            if kind == "chat" {
                assert_eq!(frame["text"], "over tls");
            }
            // The message's ack (not the auth frame's), history and chat: audience updates
            // may come at any time.
            let counted = match kind.as_str() {
                "ack" => frame["nonce"] == "n1",
                "history" | "chat" => true,
                _ => false,
            };
            if counted {
                types.push(kind);
            }
        }
        let expected: &[&str] = if i == 0 {
            &["history", "chat", "ack"]
        } else {
            &["history", "chat"]
        };
        assert_eq!(types, expected, "client {i}");
    }
    assert!(server.shutdown().await);
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_the_publish() {
    if !require_ffmpeg() {
        return;
    }
    let dir = TempDir::new("onair-tls-reload");
    let ca = TestCa::new();
    let (server, first) = tls_server(&ca, &dir, false).await;
    let rtmps = server.rtmps_addr.expect("rtmps listens");
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.rtmps_url(&server.key), PUBLISH_SECONDS);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let before = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(presented(&before), first.leaf);

    // Renewed in place, as certbot does.
    let renewed = ca.issue_to(&first.certificate, &first.private_key);
    let reload = server.reload(&running_config(&server));
    assert!(
        matches!(reload.tls, Some(Ok(()))),
        "reload: {:?}",
        reload.tls
    );
    assert!(
        reload.needs_restart.is_empty(),
        "{:?}",
        reload.needs_restart
    );
    let after = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(
        presented(&after),
        renewed.leaf,
        "a new connection gets the new certificate"
    );
    assert_ne!(renewed.leaf, first.leaf);

    // A broken renewal keeps the certificate in use.
    std::fs::write(&first.certificate, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
    let reload = server.reload(&running_config(&server));
    assert!(matches!(reload.tls, Some(Err(_))), "{:?}", reload.tls);
    let still = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(presented(&still), renewed.leaf);

    // Options that need a restart are named.
    let mut changed = running_config(&server);
    changed.rtmp.chunk_size = 8192;
    changed.log.level = "debug".into();
    let reload = server.reload(&changed);
    assert_eq!(reload.needs_restart, ["rtmp.chunk_size"]);

    // The publish over the first certificate's connection never noticed.
    let frames = server.video_frames(&server.channel);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .video_frames(&server.channel)
            > frames + 25)
        .await,
        "the publish stalled after the reloads"
    );
    assert!(ffmpeg.is_running(), "ffmpeg stopped: {}", ffmpeg.stderr());
    ffmpeg.kill().await;
    assert!(server.shutdown().await);
}

/// The `rtmps_addr` of the binary's `listening` line.
fn rtmps_addr_of(process: &OnairProcess) -> Option<SocketAddr> {
    process
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "listening")
        .and_then(|v| v["fields"]["rtmps_addr"].as_str()?.parse().ok())
}

#[tokio::test]
async fn sighup_makes_the_real_binary_serve_a_renewed_certificate() {
    let data = TempDir::new("onair-sighup");
    let ca = TestCa::new();
    let first = ca.issue(data.path(), "server");
    let file = data.path().join("onair.toml");
    std::fs::write(&file, "[rtmp]\nchunk_size = 4096\n").expect("config file");
    let launch = Launch::default()
        .env("ONAIR_CONFIG", file.display())
        .env("ONAIR_TLS_CERTIFICATE", first.certificate.display())
        .env("ONAIR_TLS_PRIVATE_KEY", first.private_key.display())
        .env("ONAIR_TLS_RTMPS_LISTEN", "127.0.0.1:0");
    let process = OnairProcess::launch(data.path(), &launch).await;
    let rtmps = rtmps_addr_of(&process).expect("the listening line names rtmps_addr");
    let block = process.bootstrap_block().await;
    assert!(
        block.contains(&format!("or RTMPS    rtmps://{rtmps}/live")),
        "the first-start block offers the RTMPS server:\n{block}"
    );
    let before = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(presented(&before), first.leaf);

    let renewed = ca.issue_to(&first.certificate, &first.private_key);
    std::fs::write(&file, "[rtmp]\nchunk_size = 8192\n").expect("config file");
    hang_up_until_logged(&process, "reloaded the tls certificate").await;
    let after = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(presented(&after), renewed.leaf);
    let log = process.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said = |message: &str| {
        lines
            .iter()
            .find(|v| v["fields"]["message"] == message)
            .map(|v| v["fields"].clone())
    };
    let restart = said("changed options take effect only after a restart")
        .unwrap_or_else(|| panic!("the changed chunk size is not reported:\n{log}"));
    assert_eq!(restart["options"], "rtmp.chunk_size", "{log}");
    let filter = said("log filter set").unwrap_or_else(|| panic!("no filter reload:\n{log}"));
    assert_eq!(
        filter["filter"], "info",
        "ONAIR_LOG wins over log.level, as at start"
    );
    // The connection made before the reload is untouched: its session is its own.
    let mut before = before;
    before
        .write_all(&[3u8; 1537])
        .await
        .expect("the old connection still writes");

    // A broken key at the next SIGHUP: the certificate in use stays, the log says so, and
    // the rest of the reload still happens.
    std::fs::write(&first.private_key, "not a key\n").expect("key file");
    hang_up_until_logged(
        &process,
        "tls certificate not reloaded; keeping the one in use",
    )
    .await;
    let log = process.stderr();
    assert_eq!(log.matches("log filter set").count(), 2, "{log}");
    assert!(!log.contains("configuration not reloaded"), "{log}");
    let kept = connect(rtmps, &ca.root()).await.expect("handshake");
    assert_eq!(presented(&kept), renewed.leaf);
}

/// Sends `process` SIGHUP and waits for `message` in its log.
async fn hang_up_until_logged(process: &OnairProcess, message: &str) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &process.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(10), || process
            .stderr()
            .contains(message))
        .await,
        "{message:?} not in the log:\n{}",
        process.stderr()
    );
}

#[tokio::test]
async fn a_client_silent_on_the_tls_port_is_closed_after_the_handshake_timeout() {
    let dir = TempDir::new("onair-tls-silent");
    let ca = TestCa::new();
    let cert = ca.issue(dir.path(), "server");
    let server = TestServer::start(move |c| {
        c.tls.certificate = Some(cert.certificate);
        c.tls.private_key = Some(cert.private_key);
        c.rtmp.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let rtmps = server.rtmps_addr.expect("rtmps listens");
    let mut silent = TcpStream::connect(rtmps).await.expect("connect");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, silent.read_to_end(&mut got))
        .await
        .expect("the server closes a silent client")
        .expect("a clean close");
    assert!(
        got.is_empty(),
        "nothing is sent to a client that said nothing"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // Meanwhile, and after, the port serves TLS as usual.
    let ok = connect(rtmps, &ca.root()).await.expect("handshake");
    drop(ok);
    assert!(server.shutdown().await);
}
