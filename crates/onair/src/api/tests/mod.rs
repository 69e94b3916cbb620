//! API tests: every route through `Router::oneshot`, each case on SQLite and on PostgreSQL
//! (`ONAIR_TEST_POSTGRES`; skipped without it on a developer machine, a failure under
//! `CI=true`).

mod admin;
mod auth;
mod contract;
mod openapi;
mod public;
mod replays;
mod restreams;
mod streamer;
mod uploads;
mod videos;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use onair_hub::{PublishOptions, Publisher};
use onair_store::{Role, Store};
use serde_json::Value;
use tower::ServiceExt;

use crate::config::Config;
use crate::lives::LiveStart;
use crate::platform::Platform;
use crate::state::AppState;

/// The password of every test account.
pub const PASSWORD: &str = "correct horse";

/// One argon2id hash of [`PASSWORD`] for the whole test binary: hashing per account would
/// make every test pay for it.
fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        onair_auth::hash_password(PASSWORD, [7; 16], onair_auth::HashCost::default())
            .unwrap()
            .into_string()
    })
    .clone()
}

/// A server's API without listeners.
pub struct Api {
    pub app: Arc<AppState>,
    pub router: Router,
}

impl Api {
    /// On `store` with the default config.
    pub async fn new(store: Store) -> Api {
        Api::with_config(store, |_| {}).await
    }

    /// On `store` with `edit` applied to the default config.
    pub async fn with_config(store: Store, edit: impl FnOnce(&mut Config)) -> Api {
        let mut config = Config::default();
        edit(&mut config);
        let platform = Platform::with_store(store, &config.auth).await.unwrap();
        let app = AppState::new(config, platform);
        let router = super::router(crate::http::api_context(&app));
        Api { app, router }
    }

    pub fn store(&self) -> &Store {
        self.app.platform.store()
    }

    /// An account with [`PASSWORD`] and a fresh access token for it.
    pub async fn account(&self, username: &str, role: Role) -> (onair_store::User, String) {
        let user = self
            .store()
            .create_user(onair_store::NewUser {
                username: username.into(),
                password_hash: password_hash(),
                role,
            })
            .await
            .unwrap();
        let (token, _) = self.app.platform.issue_access_token(&user).await.unwrap();
        (user, token.expose().to_owned())
    }

    /// Starts a publish on `slug` as the ingest would, keyed by `jti`.
    pub async fn go_live(&self, slug: &str, jti: Option<&str>) -> Publisher {
        let channel = self.store().channel_by_slug(slug).await.unwrap();
        let publisher = self
            .app
            .hub
            .publish(slug, PublishOptions::default())
            .unwrap();
        self.app.lives.start(LiveStart {
            channel: slug.into(),
            channel_id: channel.map(|c| c.id),
            key_jti: jti.map(str::to_owned),
            peer: "198.51.100.7:50000".parse().unwrap(),
        });
        publisher
    }

    /// Sends a request from 192.0.2.1.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let request = self.request(method, uri, token, body);
        self.send(request, "192.0.2.1:40000".parse().unwrap()).await
    }

    pub fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Request<Body> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "stream.example.com:8080");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        }
    }

    /// Sends `request` as if from `peer`.
    pub async fn send(&self, mut request: Request<Body>, peer: SocketAddr) -> Reply {
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, uri, token, None).await
    }

    pub async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, uri, token, Some(body)).await
    }

    pub async fn patch(&self, uri: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PATCH, uri, token, Some(body)).await
    }

    pub async fn delete(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, uri, token, None).await
    }

    /// Creates a channel through the API as the owner of `token`.
    pub async fn channel(&self, token: &str, slug: &str) -> Value {
        let reply = self
            .post(
                "/api/v1/me/channels",
                Some(token),
                serde_json::json!({ "slug": slug, "title": format!("{slug} live") }),
            )
            .await;
        reply.ok(StatusCode::CREATED)
    }

    /// Issues a key through the API; returns the whole answer.
    pub async fn key(&self, token: &str, slug: &str, label: &str) -> Value {
        self.post(
            &format!("/api/v1/me/channels/{slug}/keys"),
            Some(token),
            serde_json::json!({ "label": label }),
        )
        .await
        .ok(StatusCode::CREATED)
    }

    /// The audit log, newest first, as (action, target) pairs.
    pub async fn audit(&self) -> Vec<(String, String, Value)> {
        let (entries, _) = self
            .store()
            .list_audit(onair_store::Page::first(100))
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|e| (e.action, e.target, e.detail))
            .collect()
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The JSON body, after checking the status.
    #[track_caller]
    pub fn ok(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.json
    }

    /// Checks a problem+json answer of this status and type slug; returns the body.
    #[track_caller]
    pub fn problem(self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(
            self.json["type"],
            format!("https://onair.dev/problems/{slug}"),
            "{}",
            self.text
        );
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string());
        assert!(self.json["detail"].is_string());
        self.json
    }

    /// Checks a 400 naming exactly these fields.
    #[track_caller]
    pub fn invalid(self, fields: &[&str]) {
        let body = self.problem(400, "invalid-request");
        let named: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}");
    }
}
