//! `/admin/*`.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use onair_store::{Role, Store};
use serde_json::json;

use super::Api;

async fn only_admins(store: Store) {
    let api = Api::new(store).await;
    let (_, viewer) = api.account("vic", Role::Viewer).await;
    let (_, streamer) = api.account("sam", Role::Streamer).await;
    let routes = [
        (Method::GET, "/api/v1/admin/users"),
        (Method::POST, "/api/v1/admin/users"),
        (Method::GET, "/api/v1/admin/users/1"),
        (Method::PATCH, "/api/v1/admin/users/1"),
        (Method::GET, "/api/v1/admin/channels"),
        (Method::GET, "/api/v1/admin/channels/demo/keys"),
        (Method::DELETE, "/api/v1/admin/keys/abc"),
        (Method::GET, "/api/v1/admin/live"),
        (Method::POST, "/api/v1/admin/live/demo/kick"),
        (Method::GET, "/api/v1/admin/audit"),
    ];
    for (method, uri) in routes {
        let body =
            matches!(method, Method::POST | Method::PATCH).then(|| json!({ "banned": true }));
        for token in [&viewer, &streamer] {
            api.call(method.clone(), uri, Some(token), body.clone())
                .await
                .problem(403, "forbidden");
        }
        api.call(method.clone(), uri, None, body.clone())
            .await
            .problem(401, "unauthorized");
    }
}

async fn users_are_listed_created_and_changed(store: Store) {
    let api = Api::new(store).await;
    let (admin, token) = api.account("root", Role::Admin).await;
    let t = Some(token.as_str());
    for name in ["alice", "alicia", "bob"] {
        api.account(name, Role::Viewer).await;
    }

    let all = api.get("/api/v1/admin/users", t).await.ok(StatusCode::OK);
    assert_eq!(all["total"], 4);
    assert!(!all.to_string().contains("argon2"), "no hashes");
    let found = api
        .get("/api/v1/admin/users?search=ALI&limit=1", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(found["total"], 2);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["username"], "alice");
    api.get(&format!("/api/v1/admin/users?search={}", "x".repeat(65)), t)
        .await
        .invalid(&["search"]);
    api.get("/api/v1/admin/users?limit=0&offset=x", t)
        .await
        .invalid(&["offset"]);

    let reply = api
        .post(
            "/api/v1/admin/users",
            t,
            json!({ "username": "carol", "password": "long enough", "role": "streamer" }),
        )
        .await;
    let location = reply.headers[header::LOCATION].to_str().unwrap().to_owned();
    let carol = reply.ok(StatusCode::CREATED);
    assert_eq!(carol["role"], "streamer");
    let fetched = api.get(&location, t).await.ok(StatusCode::OK);
    assert_eq!(fetched, carol);
    api.post(
        "/api/v1/admin/users",
        t,
        json!({ "username": "Carol", "password": "long enough", "role": "viewer" }),
    )
    .await
    .problem(409, "conflict");
    api.post(
        "/api/v1/admin/users",
        t,
        json!({ "username": "dave", "password": "long enough", "role": "king" }),
    )
    .await
    .invalid(&["role"]);
    // Login works for the created account.
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "carol", "password": "long enough" }),
    )
    .await
    .ok(StatusCode::OK);

    let id = carol["id"].as_i64().unwrap();
    let uri = format!("/api/v1/admin/users/{id}");
    let changed = api
        .patch(&uri, t, json!({ "role": "viewer" }))
        .await
        .ok(StatusCode::OK);
    assert_eq!(changed["role"], "viewer");
    api.patch(&uri, t, json!({}))
        .await
        .problem(422, "unprocessable");
    api.patch(&uri, t, json!({ "banned": "yes" }))
        .await
        .invalid(&["banned"]);
    api.patch("/api/v1/admin/users/999999", t, json!({ "banned": true }))
        .await
        .problem(404, "not-found");
    api.patch("/api/v1/admin/users/abc", t, json!({ "banned": true }))
        .await
        .invalid(&["id"]);
    api.get("/api/v1/admin/users/999999", t)
        .await
        .problem(404, "not-found");
    let own = format!("/api/v1/admin/users/{}", admin.id);
    api.patch(&own, t, json!({ "banned": true }))
        .await
        .problem(422, "unprocessable");
    api.patch(&own, t, json!({ "role": "viewer" }))
        .await
        .problem(422, "unprocessable");
    api.patch(&own, t, json!({ "role": "admin" }))
        .await
        .ok(StatusCode::OK);

    let audit = api.audit().await;
    let target = format!("user:{id}");
    assert_eq!(
        (audit[0].0.as_str(), audit[0].1.as_str()),
        ("user.role", target.as_str())
    );
    assert_eq!(audit[0].2, json!({ "from": "streamer", "to": "viewer" }));
    assert_eq!(
        (audit[1].0.as_str(), audit[1].1.as_str()),
        ("user.create", target.as_str())
    );
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("long enough")
    );
}

async fn a_ban_ends_logins_and_live_streams_at_once(store: Store) {
    let api = Api::new(store).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    let (alice, token) = api.account("alice", Role::Streamer).await;
    api.channel(&token, "alice").await;
    let key = api.key(&token, "alice", "obs").await;
    let publisher = api.go_live("alice", key["jti"].as_str()).await;

    let banned = api
        .patch(
            &format!("/api/v1/admin/users/{}", alice.id),
            Some(&admin),
            json!({ "banned": true }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(banned["banned"], true);
    tokio::time::timeout(Duration::from_secs(1), publisher.kicked())
        .await
        .expect("a ban ends the owner's live stream");
    api.get("/api/v1/me/channels", Some(&token))
        .await
        .problem(401, "unauthorized");
    let (action, target, detail) = &api.audit().await[0];
    assert_eq!(
        (action.as_str(), target.as_str()),
        ("user.ban", format!("user:{}", alice.id).as_str())
    );
    assert_eq!(detail["kicked"], json!(["alice"]));

    let unbanned = api
        .patch(
            &format!("/api/v1/admin/users/{}", alice.id),
            Some(&admin),
            json!({ "banned": false }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(unbanned["banned"], false);
    assert_eq!(api.audit().await[0].0, "user.unban");
    // The old token stays ended: the ban ended its session.
    api.get("/api/v1/me/channels", Some(&token))
        .await
        .problem(401, "unauthorized");
}

async fn channels_keys_live_kick_and_audit(store: Store) {
    let api = Api::new(store).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    let t = Some(admin.as_str());
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    api.channel(&bob, "bob").await;
    let key = api.key(&alice, "alice", "obs").await;
    let jti = key["jti"].as_str().unwrap().to_owned();

    let channels = api
        .get("/api/v1/admin/channels?limit=1", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(channels["total"], 2);
    assert_eq!(channels["items"][0]["slug"], "alice");
    api.get("/api/v1/admin/channels?limit=1000", t)
        .await
        .invalid(&["limit"]);

    let keys = api.get("/api/v1/admin/channels/alice/keys", t).await;
    assert!(!keys.text.contains(key["stream_key"].as_str().unwrap()));
    let keys = keys.ok(StatusCode::OK);
    assert_eq!(keys["total"], 1);
    assert_eq!(keys["items"][0]["jti"], jti.as_str());
    api.get("/api/v1/admin/channels/alice/keys?limit=0", t)
        .await
        .invalid(&["limit"]);
    api.get("/api/v1/admin/channels/nobody/keys", t)
        .await
        .problem(404, "not-found");
    api.get("/api/v1/admin/channels/NO!/keys", t)
        .await
        .invalid(&["slug"]);

    // Live now: the full figures, with the publisher's address and key.
    let alice_live = api.go_live("alice", Some(&jti)).await;
    let _bob_live = api.go_live("bob", None).await;
    let page = api.get("/api/v1/admin/live", t).await.ok(StatusCode::OK);
    assert_eq!(page["total"], 2);
    let live = page["items"].as_array().unwrap();
    assert_eq!(live.len(), 2);
    // Paged in memory, in the same order: most viewers first, then by name.
    let second = api
        .get("/api/v1/admin/live?offset=1&limit=1", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(second["total"], 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["channel"], live[1]["channel"]);
    api.get("/api/v1/admin/live?limit=101", t)
        .await
        .invalid(&["limit"]);
    let a = live.iter().find(|l| l["channel"] == "alice").unwrap();
    assert_eq!(a["publisher_addr"], "198.51.100.7:50000");
    assert_eq!(a["key_jti"], jti.as_str());
    for field in [
        "bitrate_kbps",
        "fps",
        "uptime_seconds",
        "viewers",
        "video_codec",
        "width",
    ] {
        assert!(a.get(field).is_some(), "{field}");
    }

    // Revoke any key: kicks.
    let reply = api.delete(&format!("/api/v1/admin/keys/{jti}"), t).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    tokio::time::timeout(Duration::from_secs(1), alice_live.kicked())
        .await
        .expect("an admin revoke ends the publish");
    api.delete(&format!("/api/v1/admin/keys/{jti}"), t)
        .await
        .problem(409, "conflict");
    let revokes = api.audit().await;
    assert_eq!(
        revokes.iter().filter(|(a, _, _)| a == "key.revoke").count(),
        1,
        "a refused revoke records nothing"
    );
    api.delete("/api/v1/admin/keys/unknown", t)
        .await
        .problem(404, "not-found");

    // Kick.
    let kicked = api
        .call(Method::POST, "/api/v1/admin/live/bob/kick", t, None)
        .await;
    assert_eq!(kicked.status, StatusCode::NO_CONTENT);
    assert!(!api.app.hub.is_live("bob"));
    api.call(Method::POST, "/api/v1/admin/live/bob/kick", t, None)
        .await
        .problem(404, "not-found");
    api.call(Method::POST, "/api/v1/admin/live/b%20b/kick", t, None)
        .await
        .invalid(&["slug"]);

    // The audit log, newest first, paged.
    let audit = api
        .get("/api/v1/admin/audit?limit=2", t)
        .await
        .ok(StatusCode::OK);
    assert_eq!(audit["items"][0]["action"], "live.kick");
    assert_eq!(audit["items"][0]["target"], "channel:bob");
    assert_eq!(audit["items"][1]["action"], "key.revoke");
    assert_eq!(audit["items"][1]["target"], format!("key:{jti}"));
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
    assert!(audit["total"].as_u64().unwrap() >= 5);
    api.get("/api/v1/admin/audit?offset=2000000", t)
        .await
        .invalid(&["offset"]);
}

onair_store::store_test!(
    only_admins,
    users_are_listed_created_and_changed,
    a_ban_ends_logins_and_live_streams_at_once,
    channels_keys_live_kick_and_audit,
);
