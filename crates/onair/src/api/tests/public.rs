//! `/channels`, errors of the router itself, and a store that is away.

use axum::http::{Method, StatusCode, header};
use onair_store::{Role, Store};
use serde_json::json;

use super::Api;

async fn the_directory(store: Store) {
    let api = Api::new(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    api.channel(&bob, "bob").await;
    api.channel(&bob, "bob-2").await;
    let key = api.key(&bob, "bob", "obs").await;
    let _live = api.go_live("bob", key["jti"].as_str()).await;

    let all = api.get("/api/v1/channels", None).await;
    assert!(!all.text.contains("198.51.100.7"), "no publisher address");
    assert!(
        !all.text.contains(key["jti"].as_str().unwrap()),
        "no key id"
    );
    let all = all.ok(StatusCode::OK);
    assert_eq!(all["total"], 3);
    assert_eq!(all["items"][0]["slug"], "alice");
    assert_eq!(all["items"][0]["owner"], "alice");
    assert!(all["items"][0]["live"].is_null());
    assert_eq!(all["items"][1]["live"]["play"]["flv"], "/live/bob.flv");
    assert_eq!(
        all["items"][1]["live"]["play"]["hls"],
        "/live/bob/index.m3u8"
    );

    let live = api
        .get("/api/v1/channels?live=true", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(live["total"], 1);
    assert_eq!(live["items"][0]["slug"], "bob");
    assert_eq!(live["items"][0]["owner"], "bob");
    assert_eq!(live["items"][0]["live"]["viewers"], 0);
    let beyond = api
        .get("/api/v1/channels?live=true&offset=1", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(beyond["items"], json!([]));

    let one = api
        .get("/api/v1/channels/bob", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(one["title"], "bob live");
    assert!(one["live"]["started_at"].is_string());
    api.get("/api/v1/channels/nobody", None)
        .await
        .problem(404, "not-found");
    api.get("/api/v1/channels/Bad!", None)
        .await
        .invalid(&["slug"]);
    api.get("/api/v1/channels?live=maybe", None)
        .await
        .invalid(&["live"]);
    api.get("/api/v1/channels?limit=0", None)
        .await
        .invalid(&["limit"]);
}

/// Slugs of a directory page, and its total.
fn listed(page: &serde_json::Value) -> (Vec<&str>, u64) {
    let slugs = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    (slugs, page["total"].as_u64().unwrap())
}

async fn the_directory_is_searched_and_filtered(store: Store) {
    let api = Api::new(store).await;
    let (_, ann) = api.account("ann", Role::Streamer).await;
    let (_, ben) = api.account("ben", Role::Streamer).await;
    for (token, slug, title, category, tags) in [
        (
            &ann,
            "ann-chess",
            "Blitz night",
            "Board Games",
            json!(["chess", "EN"]),
        ),
        (&ann, "ann-runs", "100% any", "Games", json!(["speedrun"])),
        (
            &ben,
            "ben-beats",
            "Lo-fi beats",
            "Music",
            json!(["chill", "en"]),
        ),
        (&ben, "ben-talk", "Just chatting", "", json!([])),
    ] {
        api.post(
            "/api/v1/me/channels",
            Some(token),
            json!({ "slug": slug, "title": title, "category": category, "tags": tags }),
        )
        .await
        .ok(StatusCode::CREATED);
    }
    let get = async |uri: &str| api.get(uri, None).await.ok(StatusCode::OK);

    assert_eq!(
        listed(&get("/api/v1/channels?q=GAMES").await),
        (vec!["ann-chess", "ann-runs"], 2)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?q=%20ben%20").await),
        (vec!["ben-beats", "ben-talk"], 2)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?q=0%25").await),
        (vec!["ann-runs"], 1)
    );
    assert_eq!(listed(&get("/api/v1/channels?q=_").await), (vec![], 0));
    assert_eq!(
        listed(&get("/api/v1/channels?category=games").await),
        (vec!["ann-runs"], 1)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?tag=en").await),
        (vec!["ann-chess", "ben-beats"], 2)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?tag=en&q=beats&offset=0&limit=1").await),
        (vec!["ben-beats"], 1)
    );
    let second = get("/api/v1/channels?tag=en&limit=1&offset=1").await;
    assert_eq!(listed(&second), (vec!["ben-beats"], 2));
    // Empty filters filter nothing.
    assert_eq!(
        listed(&get("/api/v1/channels?q=&category=&tag=").await).1,
        4
    );

    // With live=true: only the matching channels live now, most viewers first.
    let _runs = api.go_live("ann-runs", None).await;
    let _beats = api.go_live("ben-beats", None).await;
    let _talk = api.go_live("ben-talk", None).await;
    let _viewer = api
        .app
        .hub
        .subscribe("ben-beats", onair_hub::Protocol::HttpFlv);
    assert_eq!(
        listed(&get("/api/v1/channels?live=true").await),
        (vec!["ben-beats", "ann-runs", "ben-talk"], 3)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?live=true&q=a").await),
        (vec!["ben-beats", "ann-runs", "ben-talk"], 3)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?live=true&q=n&limit=1&offset=1").await),
        (vec!["ann-runs"], 3)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?live=true&category=GAMES").await),
        (vec!["ann-runs"], 1)
    );
    assert_eq!(
        listed(&get("/api/v1/channels?live=true&tag=chess").await),
        (vec![], 0)
    );
    let beats = get("/api/v1/channels?live=true&tag=chill").await;
    assert_eq!(beats["items"][0]["live"]["viewers"], 1);
    assert_eq!(beats["items"][0]["owner"], "ben");

    // Each bad filter is named, all at once and with the paging.
    api.get(
        &format!(
            "/api/v1/channels?q={}&category={}&tag={}&limit=0",
            "q".repeat(101),
            "c".repeat(65),
            "t".repeat(33)
        ),
        None,
    )
    .await
    .invalid(&["q", "category", "tag", "limit"]);
    api.get("/api/v1/channels?tag=%20%20", None)
        .await
        .invalid(&["tag"]);
    api.get("/api/v1/channels?q=a%0Ab", None)
        .await
        .invalid(&["q"]);
    api.get("/api/v1/channels?category=%E2%80%AEx", None)
        .await
        .invalid(&["category"]);
    assert_eq!(
        listed(&get(&format!("/api/v1/channels?q={}", "%C3%A9".repeat(100))).await).1,
        0
    );

    // The categories, fullest first, without the channel that has none.
    let categories = get("/api/v1/categories").await;
    assert_eq!(
        categories,
        json!({
            "items": [
                { "name": "Board Games", "channels": 1 },
                { "name": "Games", "channels": 1 },
                { "name": "Music", "channels": 1 },
            ],
            "total": 3, "offset": 0, "limit": 20,
        })
    );
    api.post(
        "/api/v1/me/channels",
        Some(&ben),
        json!({ "slug": "ben-music", "title": "More", "category": "music" }),
    )
    .await
    .ok(StatusCode::CREATED);
    let categories = get("/api/v1/categories?limit=1").await;
    assert_eq!(categories["total"], 3);
    assert_eq!(categories["items"][0]["channels"], 2);
    api.get("/api/v1/categories?limit=101", None)
        .await
        .invalid(&["limit"]);
}

async fn unknown_routes_and_methods_are_problems(store: Store) {
    let api = Api::new(store).await;
    api.get("/api/v1/nope", None)
        .await
        .problem(404, "not-found");
    api.get("/api/v2/channels", None)
        .await
        .problem(404, "not-found");
    api.call(Method::PUT, "/api/v1/channels", None, None)
        .await
        .problem(405, "method-not-allowed");
    api.call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await
        .problem(405, "method-not-allowed");
}

async fn a_store_that_is_away_is_503(store: Store) {
    let api = Api::new(store.clone()).await;
    let (_, token) = api.account("alice", Role::Admin).await;
    store.close().await;
    let reply = api.get("/api/v1/channels", None).await;
    assert_eq!(reply.headers[header::RETRY_AFTER], "5");
    let body = reply.problem(503, "unavailable");
    assert!(!body.to_string().contains("pool"), "no internals: {body}");
    // An outage is not a reason to tell a client its token is bad.
    api.get("/api/v1/admin/users", Some(&token))
        .await
        .problem(503, "unavailable");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "username": "alice", "password": "whatever1" }),
    )
    .await
    .problem(503, "unavailable");
}

/// A page on another origin may call the API with a bearer token: the preflight allows the
/// methods and headers, and no cookies (credentials) are ever allowed.
async fn the_api_answers_cross_origin_preflights(store: Store) {
    let api = Api::new(store).await;
    let request = axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/v1/me/channels")
        .header(header::ORIGIN, "https://app.example.net")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(axum::body::Body::empty())
        .unwrap();
    // CORS is the whole HTTP router's layer, not the API's alone.
    let response = tower::ServiceExt::oneshot(crate::http::router(&api.app), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let h = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(h(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    for method in ["put", "patch", "post", "delete"] {
        assert!(
            h(header::ACCESS_CONTROL_ALLOW_METHODS).contains(method),
            "{method}"
        );
    }
    assert!(h(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("authorization"));
    assert!(h(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("content-type"));
    assert_eq!(h(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "");
}

onair_store::store_test!(
    the_directory,
    the_directory_is_searched_and_filtered,
    the_api_answers_cross_origin_preflights,
    unknown_routes_and_methods_are_problems,
    a_store_that_is_away_is_503,
);
