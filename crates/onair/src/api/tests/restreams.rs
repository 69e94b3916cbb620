//! `/channels/{slug}/restreams`: who may manage them, what is refused, and that the target key
//! is shown only by its end, in answers and in the audit log alike.

use axum::http::StatusCode;
use onair_store::{Role, Store};
use serde_json::json;

use super::Api;

const KEY: &str = "live_1234567890_abcdefgh_9x2q";

async fn destinations_are_added_listed_changed_and_removed(store: Store) {
    let api = Api::with_config(store, |c| c.restream.max_per_channel = 2).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    api.channel(&alice, "alice").await;
    let path = "/api/v1/channels/alice/restreams";

    let created = api
        .post(
            path,
            Some(&alice),
            json!({ "name": " YouTube ", "url": "rtmp://a.rtmp.example.com/live2", "stream_key": KEY }),
        )
        .await;
    assert_eq!(
        created.headers["cache-control"], "no-store",
        "an answer about a secret is not cached"
    );
    let created = created.ok(StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "YouTube");
    assert_eq!(created["stream_key"], "****9x2q");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["status"]["state"], "idle");
    assert_eq!(created["status"]["bytes_sent"], 0);

    let list = api.get(path, Some(&admin)).await.ok(StatusCode::OK);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "admins see any channel's"
    );
    assert!(!list.to_string().contains(KEY));
    api.get(path, Some(&bob)).await.problem(403, "forbidden");

    let changed = api
        .patch(
            &format!("{path}/{id}"),
            Some(&alice),
            json!({ "stream_key": "another-key-0000-zzzz", "enabled": false }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(changed["stream_key"], "****zzzz");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["url"], "rtmp://a.rtmp.example.com/live2");

    // Refusals: the field named, a scheme that is not RTMP, the cap.
    api.post(
        path,
        Some(&alice),
        json!({ "name": "", "url": "rtmp://h/app", "stream_key": "k" }),
    )
    .await
    .invalid(&["name"]);
    let wrong = api
        .post(
            path,
            Some(&alice),
            json!({ "name": "x", "url": "srt://h:9000/app", "stream_key": "k" }),
        )
        .await
        .problem(422, "unprocessable");
    assert_eq!(wrong["errors"][0]["field"], "url", "{wrong}");
    let no_app = api
        .post(
            path,
            Some(&alice),
            json!({ "name": "x", "url": "rtmp://h", "stream_key": "k" }),
        )
        .await
        .problem(422, "unprocessable");
    assert_eq!(no_app["errors"][0]["field"], "url", "{no_app}");
    api.post(
        path,
        Some(&alice),
        json!({ "name": "tls", "url": "rtmps://h/app", "stream_key": "k" }),
    )
    .await
    .ok(StatusCode::CREATED);
    api.post(
        path,
        Some(&alice),
        json!({ "name": "third", "url": "rtmp://h/app", "stream_key": "k" }),
    )
    .await
    .problem(409, "conflict");

    let status = api.delete(&format!("{path}/{id}"), Some(&bob)).await;
    assert_eq!(status.status, StatusCode::FORBIDDEN);
    let gone = api.delete(&format!("{path}/{id}"), Some(&alice)).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    api.delete(&format!("{path}/{id}"), Some(&alice))
        .await
        .problem(404, "not-found");

    let audit = api.audit().await;
    let actions: Vec<&str> = audit.iter().map(|(action, _, _)| action.as_str()).collect();
    for action in ["restream.create", "restream.update", "restream.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    for (_, _, detail) in &audit {
        assert!(!detail.to_string().contains(KEY), "{detail}");
        assert!(!detail.to_string().contains("another-key"), "{detail}");
    }
}

onair_store::store_test!(destinations_are_added_listed_changed_and_removed);
