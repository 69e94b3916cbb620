//! Origin and edges (issue 14, the media half): three in-process nodes on 127.0.0.1,
//! 127.0.0.2 and 127.0.0.3 sharing one PostgreSQL schema and the real NATS (a bucket per
//! test), ffmpeg publishing to the origin, ffprobe and FLV readers on the edges.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use onair::config::Config;
use onair::secret::SecretText;
use onair_e2e::ffmpeg::{Ffmpeg, ffprobe};
use onair_e2e::flv::{End, FlvReader};
use onair_e2e::proxy::FreezableProxy;
use onair_e2e::{TestServer, random_name, require, require_ffmpeg};
use onair_hub::Protocol;
use onair_store::testing::{TestLocation, run_postgres_db};

const NATS: &str = "127.0.0.1:4222";
const T: Duration = Duration::from_secs(20);
const RELAY_TOKEN: &str = "relay-token-for-the-cluster-test";
/// The edge's viewers wait this long for a publisher that left before they end.
const GRACE: Duration = Duration::from_secs(1);

fn require_nats() -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &NATS.parse().expect("a socket address"),
        Duration::from_secs(2),
    )
    .is_ok();
    require(
        "NATS with JetStream",
        " at 127.0.0.1:4222 (nats-server -js)",
        up,
    )
}

fn database_url(location: &TestLocation) -> String {
    match location {
        TestLocation::Postgres { url, .. } => url.clone(),
        other => panic!("the cluster tests share PostgreSQL, not {other:?}"),
    }
}

/// A node of the cluster: its own loopback address, the shared database and bucket. The
/// origin (`ip` 127.0.0.1) gets the test's dev key; `nats` may point at a proxy.
async fn node(
    ip: [u8; 4],
    id: &str,
    db: &str,
    bucket: &str,
    nats: SocketAddr,
    origin: Option<&TestServer>,
) -> TestServer {
    let (db, bucket, id) = (db.to_owned(), bucket.to_owned(), id.to_owned());
    let dev = origin.map(|o| (o.channel.clone(), o.key.clone()));
    TestServer::start(move |c: &mut Config| {
        c.rtmp.listen = SocketAddr::from((ip, 0));
        c.http.listen = SocketAddr::from((ip, 0));
        c.storage.database_url = Some(SecretText::new(db));
        c.hub.republish_grace = GRACE;
        c.cluster.nats_url = Some(SecretText::new(format!("nats://{nats}")));
        c.cluster.node_id = Some(id);
        c.cluster.lives_bucket = bucket;
        c.cluster.lease = Duration::from_secs(3);
        c.cluster.edge_linger = Duration::from_secs(2);
        c.cluster.relay_token = Some(SecretText::new(RELAY_TOKEN.into()));
        if let Some((channel, key)) = dev {
            // Every node knows the channel's key, as every node reads the same store: only
            // where the publisher connects matters.
            c.dev.keys[0].channel = channel;
            c.dev.keys[0].key = onair::secret::StreamKey::new(key);
        }
    })
    .await
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    server.metric(name).await.unwrap_or(0.0)
}

/// Whether the reader's stream ends (the server closes it) within `within`.
async fn ends_within(reader: &mut FlvReader, within: Duration) -> (bool, Duration) {
    let start = Instant::now();
    let reading = reader.read_until(within, |_| false).await;
    (reading.end == End::Closed, start.elapsed())
}

/// Waits until the origin's registry entry for `channel` is seen by `edge` (the announce
/// is asynchronous to the publish).
async fn wait_registered(edge: &TestServer, channel: &str) -> bool {
    let relay = edge.state().relay.clone().expect("a cluster node");
    onair_e2e::wait_until_async(T, || {
        let relay = relay.clone();
        let channel = channel.to_owned();
        async move {
            match relay.registry() {
                Some(r) => r.holder(&channel).await.ok().flatten().is_some(),
                None => false,
            }
        }
    })
    .await
}

/// Each test makes its own bucket; it goes when the test ends.
async fn delete_bucket(node: &TestServer) {
    let relay = node.state().relay.clone().expect("a cluster node");
    if let Some(registry) = relay.registry() {
        registry
            .delete_bucket()
            .await
            .expect("the test's bucket is deleted");
    }
}

#[test]
fn edges_pull_once_go_offline_with_the_origin_and_come_back() {
    if !require_ffmpeg() || !require_nats() {
        return;
    }
    run_postgres_db(|db| async move {
        let url = database_url(&db.location);
        let bucket = random_name("lives");
        let nats: SocketAddr = NATS.parse().expect("an address");
        let origin = node([127, 0, 0, 1], "origin", &url, &bucket, nats, None).await;
        let edge_a = node([127, 0, 0, 2], "edge-a", &url, &bucket, nats, Some(&origin)).await;
        let edge_b = node([127, 0, 0, 3], "edge-b", &url, &bucket, nats, Some(&origin)).await;
        let ch = origin.channel.clone();

        // Nothing live anywhere: an edge answers 404 at once, and pulls nothing.
        let offline = onair_e2e::http::request("GET", &edge_a.flv_url(&ch), &[], T)
            .await
            .expect("an answer");
        assert_eq!(offline.status, 404);
        assert_eq!(metric(&edge_a, "onair_relay_pulls_total").await, 0.0);

        let mut ffmpeg = Ffmpeg::publish_test_pattern(&origin.publish_url(&origin.key), 120);
        assert!(origin.wait_live(&ch, T).await, "{}", ffmpeg.stderr());
        assert!(
            wait_registered(&edge_a, &ch).await,
            "the origin never announced {ch}"
        );

        // Five viewers on edge A: one pull, one relay on the origin, no viewer there.
        let mut readers = Vec::new();
        for _ in 0..5 {
            let (_, _, reader) = FlvReader::http(&edge_a.flv_url(&ch), T)
                .await
                .expect("edge A serves the channel");
            readers.push(reader);
        }
        for reader in &mut readers {
            let reading = reader.read_media(Duration::from_secs(1), T).await;
            assert_eq!(reading.end, End::Done, "an edge viewer got media");
        }
        assert_eq!(edge_a.viewers(&ch, Protocol::HttpFlv), 5);
        assert_eq!(origin.viewers(&ch, Protocol::Relay), 1);
        assert_eq!(origin.viewers(&ch, Protocol::HttpFlv), 0);
        assert_eq!(metric(&origin, "onair_relays_served_total").await, 1.0);
        assert_eq!(metric(&edge_a, "onair_relay_pulls_total").await, 1.0);

        // ffprobe through each edge: HTTP-FLV on A (a sixth viewer, same pull), RTMP on B.
        let probe = ffprobe(&edge_a.flv_url(&ch), 2, T).await;
        assert!(probe.success, "ffprobe via edge A: {}", probe.stderr);
        assert_eq!(probe.video_codec.as_deref(), Some("h264"));
        assert!(
            probe.video_frames > 0 && probe.first_video_packet_keyframe == Some(true),
            "{probe:?}"
        );
        let probe = ffprobe(&edge_b.play_url(&ch), 2, T).await;
        assert!(probe.success, "ffprobe via edge B: {}", probe.stderr);
        assert_eq!(probe.video_codec.as_deref(), Some("h264"));
        assert!(
            probe.audio_frames > 0 && probe.video_frames > 0,
            "{probe:?}"
        );
        // WS-FLV on B: the same pull; the origin now feeds exactly one relay per edge.
        let mut ws = FlvReader::ws(&edge_b.ws_url(&ch), T)
            .await
            .expect("edge B serves WS-FLV");
        assert_eq!(
            ws.read_media(Duration::from_secs(1), T).await.end,
            End::Done
        );
        assert_eq!(origin.viewers(&ch, Protocol::Relay), 2);
        assert_eq!(metric(&edge_a, "onair_relay_pulls_total").await, 1.0);
        assert_eq!(metric(&edge_b, "onair_relay_pulls_total").await, 1.0);
        drop(ws);

        // One viewer on B stays; the publisher stops: every edge viewer ends within 3 s.
        let (_, _, mut on_b) = FlvReader::http(&edge_b.flv_url(&ch), T)
            .await
            .expect("edge B serves the channel");
        assert_eq!(
            on_b.read_media(Duration::from_secs(1), T).await.end,
            End::Done
        );
        ffmpeg.kill().await;
        let bound = Duration::from_secs(3);
        let (b_ended, b_took) = ends_within(&mut on_b, bound).await;
        assert!(
            b_ended,
            "edge B's viewer still open {b_took:?} after the publisher left"
        );
        for reader in &mut readers {
            let (ended, took) = ends_within(reader, bound).await;
            assert!(
                ended,
                "an edge A viewer still open {took:?} after the publisher left"
            );
        }
        let gone = onair_e2e::http::request("GET", &edge_a.flv_url(&ch), &[], T)
            .await
            .expect("an answer");
        assert_eq!(gone.status, 404, "offline on the edge once the origin is");

        // Republish: both edges play again.
        let _ffmpeg = Ffmpeg::publish_test_pattern(&origin.publish_url(&origin.key), 120);
        assert!(origin.wait_live(&ch, T).await);
        assert!(wait_registered(&edge_b, &ch).await);
        let probe = ffprobe(&edge_a.flv_url(&ch), 2, T).await;
        assert!(
            probe.success,
            "edge A after the republish: {}",
            probe.stderr
        );
        let probe = ffprobe(&edge_b.play_url(&ch), 2, T).await;
        assert!(
            probe.success,
            "edge B after the republish: {}",
            probe.stderr
        );

        // The relay token is what makes a relay: a plain request is a viewer of the origin.
        let (_, _, mut viewer) = FlvReader::http(&origin.flv_url(&ch), T)
            .await
            .expect("the origin serves its viewers");
        assert_eq!(
            viewer.read_media(Duration::from_millis(500), T).await.end,
            End::Done
        );
        assert_eq!(origin.viewers(&ch, Protocol::HttpFlv), 1);
        drop(viewer);

        delete_bucket(&origin).await;
        edge_a.shutdown().await;
        edge_b.shutdown().await;
        origin.shutdown().await;
    });
}

#[test]
fn an_origin_cut_from_nats_goes_offline_on_the_edge_within_the_lease() {
    if !require_ffmpeg() || !require_nats() {
        return;
    }
    run_postgres_db(|db| async move {
        let url = database_url(&db.location);
        let bucket = random_name("lives");
        let nats: SocketAddr = NATS.parse().expect("an address");
        // The origin reaches NATS through a proxy the test freezes: its claim is never
        // refreshed nor removed, as when the origin dies.
        let proxy = FreezableProxy::start(nats).await;
        let origin = node([127, 0, 0, 1], "origin", &url, &bucket, proxy.addr(), None).await;
        let edge = node([127, 0, 0, 2], "edge", &url, &bucket, nats, Some(&origin)).await;
        let ch = origin.channel.clone();
        let _ffmpeg = Ffmpeg::publish_test_pattern(&origin.publish_url(&origin.key), 120);
        assert!(origin.wait_live(&ch, T).await);
        assert!(wait_registered(&edge, &ch).await);
        let (_, _, mut reader) = FlvReader::http(&edge.flv_url(&ch), T)
            .await
            .expect("the edge serves the channel");
        assert_eq!(
            reader.read_media(Duration::from_secs(1), T).await.end,
            End::Done
        );

        proxy.freeze();
        // The lease (3 s), a registry check (1 s) and the viewers' grace (1 s), with 3 s to
        // spare for a loaded machine.
        let bound =
            Duration::from_secs(3) + Duration::from_secs(1) + GRACE + Duration::from_secs(3);
        let (ended, took) = ends_within(&mut reader, bound).await;
        assert!(
            ended,
            "the edge viewer still open {took:?} after the origin's lease ran out"
        );
        println!("edge offline {took:?} after the origin was cut from NATS");
        let gone = onair_e2e::http::request("GET", &edge.flv_url(&ch), &[], T)
            .await
            .expect("an answer");
        assert_eq!(gone.status, 404);

        proxy.thaw();
        delete_bucket(&edge).await;
        edge.shutdown().await;
        drop(origin);
    });
}
