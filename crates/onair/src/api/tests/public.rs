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
    the_api_answers_cross_origin_preflights,
    unknown_routes_and_methods_are_problems,
    a_store_that_is_away_is_503,
);
