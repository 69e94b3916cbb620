//! `/me/*`: channels, keys, live status, sessions; roles and ownership.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use chrono::Utc;
use onair_store::{Role, Store};
use serde_json::json;

use super::Api;

async fn channels_are_created_listed_edited_and_deleted(store: Store) {
    let api = Api::new(store).await;
    let (alice, token) = api.account("alice", Role::Streamer).await;
    let t = Some(token.as_str());

    let reply = api
        .post(
            "/api/v1/me/channels",
            t,
            json!({ "slug": "alice-live", "title": " Chess ", "category": "games", "tags": ["chess", " blitz "] }),
        )
        .await;
    assert_eq!(
        reply.headers[header::LOCATION],
        "/api/v1/me/channels/alice-live"
    );
    let created = reply.ok(StatusCode::CREATED);
    assert_eq!(created["title"], "Chess");
    assert_eq!(created["tags"], json!(["chess", "blitz"]));
    assert_eq!(created["owner_id"], alice.id);
    assert_eq!(created["live"], false);

    let list = api.get("/api/v1/me/channels", t).await.ok(StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(
        (list["offset"].as_u64(), list["limit"].as_u64()),
        (Some(0), Some(20))
    );
    assert_eq!(list["items"][0]["slug"], "alice-live");

    let one = api
        .get("/api/v1/me/channels/alice-live", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(one["category"], "games");

    let edited = api
        .patch(
            "/api/v1/me/channels/alice-live",
            t,
            json!({ "title": "Go", "tags": [] }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        (edited["title"].as_str(), edited["category"].as_str()),
        (Some("Go"), Some("games"))
    );
    assert_eq!(edited["tags"], json!([]));

    api.patch("/api/v1/me/channels/alice-live", t, json!({}))
        .await
        .problem(422, "unprocessable");
    api.patch(
        "/api/v1/me/channels/alice-live",
        t,
        json!({ "title": "", "category": "c".repeat(65), "tags": ["ok", ""] }),
    )
    .await
    .invalid(&["title", "category", "tags[1]"]);
    api.patch(
        "/api/v1/me/channels/alice-live",
        t,
        json!({ "slug": "renamed" }),
    )
    .await
    .invalid(&["slug"]);

    let deleted = api.delete("/api/v1/me/channels/alice-live", t).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    api.get("/api/v1/me/channels/alice-live", t)
        .await
        .problem(404, "not-found");
    let actions: Vec<String> = api.audit().await.into_iter().map(|(a, _, _)| a).collect();
    assert_eq!(
        actions,
        ["channel.delete", "channel.update", "channel.create"]
    );
}

async fn channel_input_is_checked(store: Store) {
    let api = Api::new(store).await;
    let (_, token) = api.account("alice", Role::Streamer).await;
    let t = Some(token.as_str());
    api.post(
        "/api/v1/me/channels",
        t,
        json!({ "slug": "Bad Slug", "title": "x".repeat(141), "category": "c".repeat(65),
                "tags": (0..11).map(|i| i.to_string()).collect::<Vec<_>>() }),
    )
    .await
    .invalid(&["slug", "title", "category", "tags"]);
    api.post("/api/v1/me/channels", t, json!({ "slug": "ok" }))
        .await
        .invalid(&["title"]);
    api.post(
        "/api/v1/me/channels",
        t,
        json!({ "slug": "ok", "title": "t", "tags": "chess" }),
    )
    .await
    .invalid(&["tags"]);
    api.post(
        "/api/v1/me/channels",
        t,
        json!({ "slug": "ok", "title": "t", "tags": ["a", 2] }),
    )
    .await
    .invalid(&["tags[1]"]);
    // A NUL, or a right-to-left override that makes "exe.gnp" read "png.exe".
    api.post(
        "/api/v1/me/channels",
        t,
        json!({ "slug": "ok", "title": "nul\u{0}", "category": "x\u{202E}y", "tags": ["\u{202E}gnp.exe"] }),
    )
    .await
    .invalid(&["title", "category", "tags[0]"]);
    api.channel(&token, "fine").await;
    api.patch(
        "/api/v1/me/channels/fine",
        t,
        json!({ "title": "evil\u{202E}txt.exe" }),
    )
    .await
    .invalid(&["title"]);
    api.get("/api/v1/me/channels/Not_A_Slug!", t)
        .await
        .invalid(&["slug"]);
    api.get("/api/v1/me/channels?limit=0", t)
        .await
        .invalid(&["limit"]);
    api.get("/api/v1/me/channels?limit=101", t)
        .await
        .invalid(&["limit"]);
    api.get("/api/v1/me/channels?offset=1000001", t)
        .await
        .invalid(&["offset"]);
    api.get("/api/v1/me/channels?offset=-1", t)
        .await
        .invalid(&["offset"]);
    api.get("/api/v1/me/channels?limit=ten", t)
        .await
        .invalid(&["limit"]);
    let page = api
        .get("/api/v1/me/channels?offset=1000000&limit=100", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(page["items"], json!([]));

    api.channel(&token, "taken").await;
    let (_, other) = api.account("bob", Role::Streamer).await;
    api.post(
        "/api/v1/me/channels",
        Some(&other),
        json!({ "slug": "taken", "title": "mine" }),
    )
    .await
    .problem(409, "conflict");
}

async fn roles_and_ownership(store: Store) {
    let api = Api::new(store).await;
    let (_, viewer) = api.account("vic", Role::Viewer).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    let (_, admin) = api.account("root", Role::Admin).await;

    api.get("/api/v1/me/channels", Some(&viewer))
        .await
        .problem(403, "forbidden");
    api.post(
        "/api/v1/me/channels",
        Some(&viewer),
        json!({ "slug": "vic", "title": "t" }),
    )
    .await
    .problem(403, "forbidden");
    api.get("/api/v1/me/channels", None)
        .await
        .problem(401, "unauthorized");

    api.channel(&alice, "alice").await;
    let key = api.key(&alice, "alice", "obs").await;
    let jti = key["jti"].as_str().unwrap();
    // Bob, and an admin on /me, see alice's channel as missing, whatever they try.
    for token in [&bob, &admin] {
        let t = Some(token.as_str());
        for (method, uri) in [
            (Method::GET, "/api/v1/me/channels/alice".to_owned()),
            (Method::DELETE, "/api/v1/me/channels/alice".to_owned()),
            (Method::GET, "/api/v1/me/channels/alice/keys".to_owned()),
            (Method::GET, "/api/v1/me/channels/alice/live".to_owned()),
            (Method::GET, "/api/v1/me/channels/alice/sessions".to_owned()),
            (
                Method::DELETE,
                format!("/api/v1/me/channels/alice/keys/{jti}"),
            ),
            (
                Method::POST,
                format!("/api/v1/me/channels/alice/keys/{jti}/rotate"),
            ),
        ] {
            api.call(method.clone(), &uri, t, None)
                .await
                .problem(404, "not-found");
        }
        api.patch("/api/v1/me/channels/alice", t, json!({ "title": "pwned" }))
            .await
            .problem(404, "not-found");
        api.post("/api/v1/me/channels/alice/keys", t, json!({}))
            .await
            .problem(404, "not-found");
        let mine = api.get("/api/v1/me/channels", t).await.ok(StatusCode::OK);
        assert_eq!(mine["total"], 0);
    }
    // Nothing changed.
    let keys = api
        .get("/api/v1/me/channels/alice/keys", Some(&alice))
        .await
        .ok(StatusCode::OK);
    assert_eq!(keys["total"], 1);
    assert!(keys["items"][0]["revoked_at"].is_null());
    let channel = api
        .get("/api/v1/me/channels/alice", Some(&alice))
        .await
        .ok(StatusCode::OK);
    assert_eq!(channel["title"], "alice live");
    // An admin may own channels on /me.
    api.channel(&admin, "root-cam").await;
}

async fn keys_are_issued_once_listed_revoked_and_rotated(store: Store) {
    let api = Api::with_config(store, |c| c.rtmp.listen = "0.0.0.0:19350".parse().unwrap()).await;
    let (_, token) = api.account("alice", Role::Streamer).await;
    let t = Some(token.as_str());
    let channel = api.channel(&token, "alice").await;

    let reply = api
        .post(
            "/api/v1/me/channels/alice/keys",
            t,
            json!({ "label": "OBS at home" }),
        )
        .await;
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let issued = reply.ok(StatusCode::CREATED);
    // From the configuration: the request's Host header (stream.example.com) is the
    // client's to write, and never reaches the answer.
    assert_eq!(issued["rtmp_url"], "rtmp://localhost:19350/live");
    assert_eq!(issued["label"], "OBS at home");
    assert!(issued["expires_at"].is_null());
    let jti = issued["jti"].as_str().unwrap().to_owned();
    let stream_key = issued["stream_key"].as_str().unwrap().to_owned();
    let claims = onair_auth::verify_stream_key(
        api.app.platform.signing_key(),
        &stream_key,
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(claims.jti.as_str(), jti);
    assert_eq!(claims.channel_id, channel["id"].as_i64().unwrap());

    let short = api
        .post(
            "/api/v1/me/channels/alice/keys",
            t,
            json!({ "ttl_seconds": 3600 }),
        )
        .await
        .ok(StatusCode::CREATED);
    let expires: chrono::DateTime<Utc> =
        serde_json::from_value(short["expires_at"].clone()).unwrap();
    assert!((expires - Utc::now()).num_seconds() > 3500);
    let short_jti = short["jti"].as_str().unwrap().to_owned();

    api.post(
        "/api/v1/me/channels/alice/keys",
        t,
        json!({ "label": "l".repeat(65), "ttl_seconds": 5 }),
    )
    .await
    .invalid(&["label", "ttl_seconds"]);
    api.post(
        "/api/v1/me/channels/alice/keys",
        t,
        json!({ "ttl_seconds": -5 }),
    )
    .await
    .invalid(&["ttl_seconds"]);

    let list = api.get("/api/v1/me/channels/alice/keys", t).await;
    assert!(!list.text.contains(&stream_key), "a list never shows a key");
    assert!(!list.text.contains("stream_key"));
    let list = list.ok(StatusCode::OK);
    assert_eq!(list["total"], 2);
    assert_eq!(
        (list["offset"].as_u64(), list["limit"].as_u64()),
        (Some(0), Some(20))
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["jti"], jti.as_str());
    assert!(list["items"][0]["last_used_at"].is_null());
    let second = api
        .get("/api/v1/me/channels/alice/keys?offset=1&limit=1", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(second["total"], 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["jti"], short_jti.as_str());
    for bad in ["limit=0", "limit=101"] {
        api.get(&format!("/api/v1/me/channels/alice/keys?{bad}"), t)
            .await
            .invalid(&["limit"]);
    }
    api.get("/api/v1/me/channels/alice/keys?offset=1000001", t)
        .await
        .invalid(&["offset"]);

    // Revoke: 204, then 409 (as the README promises) without a second audit entry.
    let uri = format!("/api/v1/me/channels/alice/keys/{short_jti}");
    assert_eq!(api.delete(&uri, t).await.status, StatusCode::NO_CONTENT);
    let again = api.delete(&uri, t).await.problem(409, "conflict");
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already revoked"),
        "{again}"
    );
    api.post(&format!("{uri}/rotate"), t, json!(null))
        .await
        .problem(409, "conflict");
    api.delete("/api/v1/me/channels/alice/keys/0000", t)
        .await
        .problem(404, "not-found");

    // Rotate the live key: a new key with the same label; the old one revoked and kicked.
    let publisher = api.go_live("alice", Some(&jti)).await;
    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/me/channels/alice/keys/{jti}/rotate"),
            t,
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(rotated["label"], "OBS at home");
    assert_ne!(rotated["jti"], jti.as_str());
    assert!(rotated["stream_key"].as_str().unwrap().len() > 20);
    tokio::time::timeout(Duration::from_secs(1), publisher.kicked())
        .await
        .expect("rotating a live key ends the publish");
    let old = api.store().stream_key_by_jti(&jti).await.unwrap().unwrap();
    assert!(old.is_revoked());

    let audit = api.audit().await;
    let entries: Vec<(&str, &str)> = audit
        .iter()
        .map(|(a, t, _)| (a.as_str(), t.as_str()))
        .collect();
    let old_target = format!("key:{jti}");
    let short_target = format!("key:{short_jti}");
    assert_eq!(entries[0], ("key.rotate", old_target.as_str()));
    assert_eq!(entries[1], ("key.revoke", short_target.as_str()));
    assert_eq!(entries[2].0, "key.issue");
    assert_eq!(
        entries.iter().filter(|(a, _)| *a == "key.revoke").count(),
        1
    );
    let everything = serde_json::to_string(&audit).unwrap();
    assert!(!everything.contains(&stream_key), "no key in the audit log");
    assert!(!everything.contains(rotated["stream_key"].as_str().unwrap()));
}

async fn revoking_a_live_key_kicks_the_publisher(store: Store) {
    let api = Api::new(store).await;
    let (_, token) = api.account("alice", Role::Streamer).await;
    api.channel(&token, "alice").await;
    let key = api.key(&token, "alice", "obs").await;
    let jti = key["jti"].as_str().unwrap();
    assert_eq!(key["rtmp_url"], "rtmp://localhost/live");
    let publisher = api.go_live("alice", Some(jti)).await;
    let reply = api
        .delete(
            &format!("/api/v1/me/channels/alice/keys/{jti}"),
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    tokio::time::timeout(Duration::from_secs(1), publisher.kicked())
        .await
        .expect("revoking a live key ends the publish");
    let (_, _, detail) = &api.audit().await[0];
    assert_eq!(detail["kicked"], true);
}

async fn live_status_and_sessions(store: Store) {
    let api = Api::new(store).await;
    let (_, token) = api.account("alice", Role::Streamer).await;
    let t = Some(token.as_str());
    let channel = api.channel(&token, "alice").await;
    let id = channel["id"].as_i64().unwrap();

    let off = api
        .get("/api/v1/me/channels/alice/live", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(off, json!({ "live": false, "stream": null }));
    let _publisher = api.go_live("alice", None).await;
    let on = api
        .get("/api/v1/me/channels/alice/live", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(on["live"], true);
    assert_eq!(on["stream"]["channel"], "alice");
    assert_eq!(on["stream"]["viewers"]["total"], 0);
    let listed = api
        .get("/api/v1/me/channels/alice", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(listed["live"], true);

    for minutes in [30, 20, 10] {
        let started = Utc::now() - chrono::Duration::minutes(minutes);
        let session = api
            .store()
            .start_live_session(onair_store::NewLiveSession {
                channel_id: id,
                started_at: started,
                publisher_addr: "198.51.100.7:50000".into(),
                video_codec: Some("h264".into()),
                audio_codec: Some("aac".into()),
            })
            .await
            .unwrap();
        api.store()
            .end_live_session(session, started + chrono::Duration::minutes(5), 1000, 3)
            .await
            .unwrap();
    }
    let page = api
        .get("/api/v1/me/channels/alice/sessions?limit=2", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["video_codec"], "h264");
    assert_eq!(page["items"][0]["peak_viewers"], 3);
    let rest = api
        .get("/api/v1/me/channels/alice/sessions?offset=2&limit=2", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    api.get("/api/v1/me/channels/alice/sessions?limit=500", t)
        .await
        .invalid(&["limit"]);
}

async fn issued_keys_name_the_configured_server_never_the_host_header(store: Store) {
    let api = Api::with_config(store, |c| {
        c.rtmp.public_url = Some("rtmps://live.example.com:443/live".into());
    })
    .await;
    let (_, token) = api.account("alice", Role::Streamer).await;
    api.channel(&token, "alice").await;
    let mut request = api.request(
        Method::POST,
        "/api/v1/me/channels/alice/keys",
        Some(&token),
        Some(json!({ "label": "obs" })),
    );
    request.headers_mut().insert(
        header::HOST,
        header::HeaderValue::from_static("evil.example:8080"),
    );
    let issued = api
        .send(request, "192.0.2.1:40000".parse().unwrap())
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(issued["rtmp_url"], "rtmps://live.example.com:443/live");
    let jti = issued["jti"].as_str().unwrap();
    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/me/channels/alice/keys/{jti}/rotate"),
            Some(&token),
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(rotated["rtmp_url"], "rtmps://live.example.com:443/live");
}

onair_store::store_test!(
    issued_keys_name_the_configured_server_never_the_host_header,
    channels_are_created_listed_edited_and_deleted,
    channel_input_is_checked,
    roles_and_ownership,
    keys_are_issued_once_listed_revoked_and_rotated,
    revoking_a_live_key_kicks_the_publisher,
    live_status_and_sessions,
);
