//! The database goes away while a channel is live: the live stream and its viewer carry on,
//! a new publish is refused with a clear reason instead of hanging, and `/readyz` says the
//! server is not ready.

use std::time::Duration;

use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, http, logs, require_ffmpeg};
use onair_store::{NewChannel, Role};

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_outlast_the_database_and_new_publishes_are_refused_clearly() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let platform = server.platform();
    let owner = platform
        .create_user("outage-owner", "password-123", Role::Streamer)
        .await
        .unwrap();
    let mut keys = Vec::new();
    for slug in ["outage-a", "outage-b"] {
        let channel = platform
            .store()
            .create_channel(NewChannel {
                slug: slug.into(),
                title: slug.into(),
                owner_id: owner.id,
                category: String::new(),
                tags: vec![],
            })
            .await
            .unwrap();
        let key = platform
            .issue_stream_key(channel.id, "OBS", None)
            .await
            .unwrap();
        keys.push(key.token.expose().to_owned());
    }

    let mut live = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[0]), 10);
    assert!(
        server.wait_live("outage-a", LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        live.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url("outage-a"), IO_TIMEOUT)
        .await
        .expect("http-flv opens");

    platform.store().close().await;

    // The live stream keeps flowing to its viewer for more than two of the watch loop's
    // store checks after the database went away.
    let reading = viewer
        .read_media(Duration::from_secs(2), Duration::from_secs(6))
        .await;
    assert_eq!(
        reading.end,
        End::Done,
        "the viewer lost the stream when the database went away"
    );
    assert!(server.hub().is_live("outage-a"));

    let mut refused = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[1]), 3);
    let status = refused
        .wait(Duration::from_secs(20))
        .await
        .expect("the refused ffmpeg exits");
    assert!(
        !status.success(),
        "a publish the server cannot check must be refused"
    );
    assert!(!server.hub().is_live("outage-b"));
    let reasons = captured.containing("cannot check the key now");
    assert!(
        !reasons.is_empty(),
        "the refusal's reason is not in the log"
    );

    let ready = http::request("GET", &server.http_url("/readyz"), &[], IO_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "/readyz must fail without the database");

    for key in &keys {
        assert!(
            captured.containing(key).is_empty(),
            "a stream key reached the log"
        );
    }
    live.kill().await;
    server.shutdown().await;
}
