//! The OpenAPI document: served, complete, and in step with the router.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::config::Config;
use crate::platform::Platform;
use crate::state::AppState;

/// Every route of the API. Adding a route means adding it here, to the router and to the
/// document at once (they come from one list in `api::routes`).
const ROUTES: [(&str, &str); 74] = [
    ("GET", "/api/openapi.json"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/me/channels"),
    ("POST", "/api/v1/me/channels"),
    ("GET", "/api/v1/me/channels/{slug}"),
    ("PATCH", "/api/v1/me/channels/{slug}"),
    ("DELETE", "/api/v1/me/channels/{slug}"),
    ("GET", "/api/v1/me/channels/{slug}/keys"),
    ("POST", "/api/v1/me/channels/{slug}/keys"),
    ("DELETE", "/api/v1/me/channels/{slug}/keys/{jti}"),
    ("POST", "/api/v1/me/channels/{slug}/keys/{jti}/rotate"),
    ("GET", "/api/v1/me/channels/{slug}/live"),
    ("GET", "/api/v1/me/channels/{slug}/sessions"),
    ("GET", "/api/v1/admin/users"),
    ("POST", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{id}"),
    ("PATCH", "/api/v1/admin/users/{id}"),
    ("GET", "/api/v1/admin/channels"),
    ("GET", "/api/v1/admin/channels/{slug}/keys"),
    ("DELETE", "/api/v1/admin/keys/{jti}"),
    ("GET", "/api/v1/admin/live"),
    ("POST", "/api/v1/admin/live/{slug}/kick"),
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/categories"),
    ("GET", "/api/v1/channels/{slug}"),
    ("GET", "/api/v1/channels/{slug}/replays"),
    ("GET", "/api/v1/replays"),
    ("GET", "/api/v1/replays/{id}"),
    ("DELETE", "/api/v1/replays/{id}"),
    ("GET", "/api/v1/admin/replays/retention"),
    ("PUT", "/api/v1/admin/replays/retention"),
    ("GET", "/api/v1/channels/{slug}/messages"),
    ("DELETE", "/api/v1/channels/{slug}/messages/{id}"),
    ("GET", "/api/v1/recordings/{id}/danmaku"),
    ("GET", "/api/v1/gifts"),
    ("GET", "/api/v1/me/wallet"),
    ("POST", "/api/v1/channels/{slug}/gifts"),
    ("POST", "/api/v1/admin/users/{id}/wallet"),
    ("GET", "/api/v1/channels/{slug}/restreams"),
    ("POST", "/api/v1/channels/{slug}/restreams"),
    ("PATCH", "/api/v1/channels/{slug}/restreams/{id}"),
    ("DELETE", "/api/v1/channels/{slug}/restreams/{id}"),
    ("POST", "/api/v1/channels/{slug}/mutes"),
    ("DELETE", "/api/v1/channels/{slug}/mutes/{user_id}"),
    ("POST", "/api/v1/channels/{slug}/bans"),
    ("DELETE", "/api/v1/channels/{slug}/bans/{user_id}"),
    ("PUT", "/api/v1/channels/{slug}/slow-mode"),
    ("GET", "/api/v1/videos"),
    ("GET", "/api/v1/videos/{id}"),
    ("PATCH", "/api/v1/videos/{id}"),
    ("DELETE", "/api/v1/videos/{id}"),
    ("GET", "/api/v1/videos/{id}/thumbnail.jpg"),
    ("POST", "/api/v1/videos/{id}/views"),
    ("GET", "/api/v1/videos/{id}/comments"),
    ("POST", "/api/v1/videos/{id}/comments"),
    ("PATCH", "/api/v1/videos/{id}/comments/{comment_id}"),
    ("DELETE", "/api/v1/videos/{id}/comments/{comment_id}"),
    ("GET", "/api/v1/video-categories"),
    ("POST", "/api/v1/admin/video-categories"),
    ("PATCH", "/api/v1/admin/video-categories/{id}"),
    ("DELETE", "/api/v1/admin/video-categories/{id}"),
    ("GET", "/api/v1/channels/{slug}/replays/latest/index.m3u8"),
    ("POST", "/api/v1/uploads"),
    ("GET", "/api/v1/uploads/{id}"),
    ("PATCH", "/api/v1/uploads/{id}"),
    ("DELETE", "/api/v1/uploads/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

async fn server_router() -> axum::Router {
    let store = onair_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let config = Config::default();
    let platform = Platform::with_store(store, &config.auth).await.unwrap();
    crate::http::router(&AppState::new(config, platform))
}

async fn fetch(router: &axum::Router, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let router = server_router().await;
    let (status, served) = fetch(&router, "GET", "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let built = serde_json::to_value(super::super::openapi()).unwrap();
    assert_eq!(served, built);
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "Problem",
        "FieldError",
        "User",
        "Channel",
        "IssuedStreamKey",
        "LiveNow",
    ] {
        assert!(
            served["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
}

#[tokio::test]
async fn every_api_route_is_in_the_document_and_every_documented_route_is_served() {
    let router = server_router().await;
    let doc = serde_json::to_value(super::super::openapi()).unwrap();
    let documented = operations(&doc);
    let api_routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|(_, path)| path.starts_with("/api/"))
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, api_routes);

    // Each route answers from its handler, never from the router's "no such route" or
    // "method not allowed": without a token a protected route says 401, a public one
    // answers or says its resource is missing.
    for (method, path) in ROUTES {
        let uri = path
            .replace("{slug}", "some-channel")
            .replace("{jti}", "0123")
            .replace("{id}", "1");
        let (status, body) = fetch(&router, method, &uri).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(body["detail"], "no such API route", "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                body["detail"].is_string(),
                "{method} {path}: a handler's 404"
            );
        }
    }
}

#[tokio::test]
async fn every_operation_documents_its_errors() {
    let doc = serde_json::to_value(super::super::openapi()).unwrap();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        let secured = op.get("security").is_some();
        // The document itself is served from memory and cannot fail.
        let store_free = path == super::super::OPENAPI_PATH;
        for code in ["500", "503"] {
            assert_eq!(
                responses.contains_key(code),
                !store_free,
                "{method} {path} and {code}"
            );
        }
        if secured {
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        }
        if op.get("requestBody").is_some() {
            for code in ["400", "408", "413", "415"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
        }
        // A key's `{jti}` is any text: a path whose only parameter it is cannot be malformed.
        let checked_path = path.replace("{jti}", "").contains('{');
        // A header parameter (tus's `Upload-Length`) can be malformed like a query one.
        let query = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" || p["in"] == "header"));
        assert_eq!(
            responses.contains_key("400"),
            checked_path || query || op.get("requestBody").is_some(),
            "{method} {path} and 400"
        );
        // Reading the directory, a channel's chat, danmaku and the gift catalogue is public; sending gifts,
        // moderating and restream destinations under /channels are not.
        let public = (method == "GET"
            && !path.contains("/restreams")
            && [
                "/api/v1/channels",
                "/api/v1/categories",
                "/api/v1/replays",
                "/api/v1/recordings",
                "/api/v1/videos",
                "/api/v1/video-categories",
            ]
            .iter()
            .any(|p| path.starts_with(p)))
            || (method == "POST" && path == "/api/v1/videos/{id}/views")
            || path == "/api/v1/gifts"
            || path == "/api/openapi.json"
            || ["/api/v1/auth/login", "/api/v1/auth/register"].contains(&path.as_str());
        assert_eq!(secured, !public, "{method} {path}");
        // A redirect is the success of a stable link (the newest replay's playlist).
        assert!(
            responses
                .keys()
                .any(|c| c.starts_with('2') || c.as_str() == "302"),
            "{method} {path} has no success"
        );
    }
    // Every reference points at a component that exists.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind].get(name).is_some(),
            "dangling reference {target}"
        );
    }
}

/// What the document promises for bodies and ids is what the server answers, on every
/// operation: a body that is not JSON is 415, an id past 64 bits is 400 (not 404).
#[tokio::test]
async fn bodies_that_are_not_json_are_415_and_ids_past_64_bits_are_400_everywhere() {
    let store = onair_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let api = super::Api::with_config(store, |c| c.auth.registration = true).await;
    let (_, token) = api.account("root", onair_store::Role::Admin).await;
    let doc = serde_json::to_value(super::super::openapi()).unwrap();
    let huge = "99999999999999999999";
    let mut bodies = 0;
    let mut ids = 0;
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let uri = path
            .replace("{slug}", "some-channel")
            .replace("{jti}", "0123");
        if op.get("requestBody").is_some() {
            let uri = uri
                .replace("{id}", "1")
                .replace("{user_id}", "1")
                .replace("{comment_id}", "1");
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "text/plain")
                .body(Body::from("not json"))
                .unwrap();
            let reply = api.send(request, "192.0.2.9:1".parse().unwrap()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {uri}"
            );
            bodies += 1;
        }
        if path.contains("{id}") || path.contains("{user_id}") {
            let uri = uri
                .replace("{id}", huge)
                .replace("{user_id}", huge)
                .replace("{comment_id}", huge);
            let body = op.get("requestBody").map(|_| serde_json::json!({}));
            let reply = api.call(method.clone(), &uri, Some(&token), body).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                reply.text
            );
            ids += 1;
        }
    }
    assert!(bodies >= 13 && ids >= 9, "{bodies} bodies, {ids} ids");
}
