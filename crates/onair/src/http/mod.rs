//! The HTTP listener: one router for the REST API, the FLV feeds (`crate::flv`), HLS
//! (`crate::hls::http`), health and metrics and the web app (`onair_web`, whatever no other
//! route matched), with CORS for players and pages on other origins and a trace span per
//! request; [`connections`] accepts and drives the connections (timeouts, caps, the
//! descriptor budget).

pub mod connections;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use onair_chat::ChatService;
use onair_hub::Hub;
use onair_store::Store;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::warn;

use crate::flv::Feeds;
use crate::metrics::Metrics;
use crate::state::AppState;

/// What `/readyz` and `/metrics` read.
#[derive(Debug)]
struct Ops {
    platform: Arc<crate::platform::Platform>,
    store: Store,
    metrics: Arc<Metrics>,
    chat: Arc<ChatService>,
    hub: Arc<Hub>,
    hls: Arc<crate::hls::Hls>,
    /// The link to the other nodes, when there are any.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `http.metrics_token`: the bearer token `/metrics` asks for.
    metrics_token: Option<crate::secret::SecretText>,
}

/// Serves HTTP until shutdown, with `[http]`'s timeouts and caps from `limits`, which a
/// reload may change (see [`connections`]);
/// connections take their descriptors from `descriptors`. With `tls`, HTTPS only.
pub(crate) fn serve(
    state: &AppState,
    listener: TcpListener,
    descriptors: Arc<crate::descriptors::Descriptors>,
    tls: Option<Arc<crate::tls::Certificates>>,
    limits: connections::SharedLimits,
) -> impl Future<Output = ()> + use<> {
    let ctx = connections::Listener {
        limits,
        descriptors,
        metrics: state.metrics.clone(),
        shutdown: state.shutdown.clone(),
        tasks: state.tasks.clone(),
        tls,
    };
    connections::serve(listener, router(state), ctx)
}

/// The HTTP routes, without a listener (tests drive it with `oneshot`). Each part gets only
/// its own context: the API its `ApiState`, the feeds [`Feeds`], HLS the `Hls` handle.
pub fn router(state: &AppState) -> Router {
    let feeds = Arc::new(Feeds {
        hub: state.hub.clone(),
        auth: state.auth.clone(),
        hub_config: state.config.hub.clone(),
        metrics: state.metrics.clone(),
        relay: state.relay.clone(),
    });
    let ops = Arc::new(Ops {
        platform: state.platform.clone(),
        store: state.platform.store().clone(),
        metrics: state.metrics.clone(),
        chat: state.chat.clone(),
        hub: state.hub.clone(),
        hls: state.hls.clone(),
        cluster: state.cluster.clone(),
        metrics_token: state.config.http.metrics_token.clone(),
    });
    // The trace layer wraps response bodies and reads the clock for every body chunk; on a
    // stream that is a clock read per frame per viewer, so the FLV feeds log their own join
    // and leave instead, and only the short requests are traced per response.
    let traced = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
        .merge(crate::hls::http::router(state.hls.clone()))
        .merge(crate::api::router(api_context(state)))
        // Last and as a fallback: the app answers client routes (`/watch/demo`) with its
        // index, and only what the server's own routes did not match.
        .merge(onair_web::router())
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    Router::new()
        .merge(crate::flv::router(feeds))
        .merge(traced)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            time_request,
        ))
        .layer(cors(&state.config.http.cors_origins))
        // Outside the CORS layer, which answers every OPTIONS itself (as a preflight): tus
        // discovery (`OPTIONS /api/v1/uploads`) gets its headers on that answer.
        .layer(axum::middleware::from_fn_with_state(
            state.uploads.max_upload_bytes(),
            tus_discovery,
        ))
}

/// Adds the tus discovery headers to the answer to `OPTIONS /api/v1/uploads`.
async fn tus_discovery(
    State(max_upload_bytes): State<u64>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let discovery =
        request.method() == Method::OPTIONS && request.uri().path() == crate::api::UPLOADS_PATH;
    let mut response = next.run(request).await;
    if discovery {
        crate::api::tus_discovery_headers(response.headers_mut(), max_upload_bytes);
    }
    response
}

/// What the REST API may touch of `state`.
pub fn api_context(state: &AppState) -> crate::api::ApiContext {
    crate::api::ApiContext {
        platform: state.platform.clone(),
        hub: state.hub.clone(),
        lives: state.lives.clone(),
        chat: state.chat.clone(),
        hls: state.hls.clone(),
        uploads: state.uploads.clone(),
        rtmp: state.config.rtmp.clone(),
        login_attempts_per_minute: state.config.auth.login_attempts_per_minute,
        shutdown: state.shutdown.clone(),
        tasks: state.tasks.clone(),
        restreams: state.restreams.clone(),
    }
}

/// The span of one HTTP request: method and the matched route (`/live/{file}`), never the
/// URI, which may carry a key or a token.
fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    tracing::info_span!("http", method = %request.method(), route = route.as_deref().unwrap_or("(unmatched)"))
}

fn cors(origins: &[String]) -> CorsLayer {
    // flv.js/mpegts.js in a page on another origin fetch with Range preflights (flv.js
    // docs/cors.md). The API authenticates with a bearer header, never a cookie, so a page
    // elsewhere can call it without opening a CSRF hole: no credentials are allowed.
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        // tus-js-client in a page sends and reads the tus headers (`/api/v1/uploads`).
        .allow_headers([
            header::RANGE,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-offset"),
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            header::LOCATION,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("tus-version"),
            HeaderName::from_static("tus-extension"),
            HeaderName::from_static("tus-max-size"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-expires"),
        ])
}

/// Ready when the store answers within a second: without it no publish can be authorised and
/// the API cannot serve, so a load balancer should send traffic elsewhere. Streams already
/// live keep playing either way. A node of a cluster adds a line `cluster: connected` or
/// `cluster: degraded` (NATS away): still ready, as it serves its own members alone.
async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(1), ops.store.ping()).await {
        Ok(Ok(())) => match &ops.cluster {
            None => "ready".into_response(),
            Some(cluster) if cluster.connected() => "ready\ncluster: connected\n".into_response(),
            Some(_) => "ready\ncluster: degraded\n".into_response(),
        },
        Ok(Err(e)) => {
            warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            warn!("not ready: the database did not answer within 1 s");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(ops): State<Arc<Ops>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &ops.metrics_token {
        let offered = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // `matches` compares in constant time, so the answer's timing says nothing of the token.
        if !offered.is_some_and(|t| token.matches(t)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                "a bearer token is required (http.metrics_token)",
            )
                .into_response();
        }
    }
    let text = crate::metrics::render(crate::metrics::Sources {
        metrics: &ops.metrics,
        chat: &ops.chat,
        hub: &ops.hub,
        hashing: ops.platform.hashing().stats(),
        store: ops.store.call_times(),
        recordings_written: ops.hls.recordings_written(),
        cluster: ops.cluster.as_deref(),
    });
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Times a request to its response head under its route template (never the raw path, which
/// may carry a key), and counts HLS requests and chat sockets as those protocols' clients.
async fn time_request(
    State(metrics): State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // A clone of the shared template, not a copy of its text.
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("(unmatched)", |p| p.as_str());
    metrics.http_request(route, started.elapsed());
    let wire = match route {
        "/live/{file}/{name}" | "/replays/{id}/{name}" => Some(crate::metrics::Wire::Hls),
        r if r.starts_with("/api/") && r.ends_with("/chat") => (response.status()
            == StatusCode::SWITCHING_PROTOCOLS)
            .then_some(crate::metrics::Wire::Chat),
        _ => None,
    };
    if let Some(w) = wire {
        metrics.opened.add(w, 1);
    }
    response
}
