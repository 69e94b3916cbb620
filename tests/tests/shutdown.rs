//! A clean stop: on shutdown the server ends every publish and every viewer's stream at once
//! (viewers do not wait out the republish grace) and finishes within its shutdown grace.

use std::time::Duration;

use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, require_ffmpeg};

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_publishers_and_viewers_within_the_grace() {
    if !require_ffmpeg() {
        return;
    }
    // A republish grace far longer than the shutdown grace: a viewer that waited it out would
    // make the shutdown late.
    let server = TestServer::start(|c| {
        c.hub.republish_grace = Duration::from_secs(60);
        c.shutdown_grace = Duration::from_secs(5);
    })
    .await;
    let mut publisher = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 60);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        publisher.stderr()
    );
    let (_, _, mut http_viewer) = FlvReader::http(&server.flv_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("http-flv opens");
    let mut ws_viewer = FlvReader::ws(&server.ws_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("ws-flv opens");
    for (name, viewer) in [("http-flv", &mut http_viewer), ("ws-flv", &mut ws_viewer)] {
        let first = viewer
            .read_until(LIVE_TIMEOUT, |tags| tags.len() >= 10)
            .await;
        assert_eq!(
            first.end,
            End::Done,
            "{name} viewer plays before the shutdown"
        );
    }
    let http_reading = tokio::spawn(async move {
        http_viewer
            .read_until(Duration::from_secs(30), |_| false)
            .await
    });
    let ws_reading = tokio::spawn(async move {
        ws_viewer
            .read_until(Duration::from_secs(30), |_| false)
            .await
    });

    let clean = tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .expect("shutdown returns");
    assert!(clean, "every connection ended within the shutdown grace");

    for (name, reading) in [("http-flv", http_reading), ("ws-flv", ws_reading)] {
        let reading = reading.await.expect("reader task");
        assert_eq!(
            reading.end,
            End::Closed,
            "{name} viewer's stream ended by the server"
        );
    }
    let status = publisher.wait(Duration::from_secs(20)).await;
    assert!(
        status.is_some(),
        "ffmpeg stops publishing once the server has gone; it said:\n{}",
        publisher.stderr()
    );
}
