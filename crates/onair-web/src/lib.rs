//! The web app's built assets (`web/dist`, committed and rebuilt by CI from `web/`), embedded
//! in the binary so that `onair` alone serves the UI on a machine with no Node, and the axum
//! router that serves them.
//!
//! | what | cache |
//! | --- | --- |
//! | `/assets/*` (Vite puts a content hash in every name) | `public, max-age=31536000, immutable` |
//! | `index.html`, served for every client route | `no-cache` (revalidated by `ETag`) |
//! | other files (`favicon.svg`) | `public, max-age=3600` |
//!
//! Client routes (`/`, `/watch/demo`, `/replays/3`, `/dashboard`, …) get `index.html`, and the
//! app's router draws the page. Server paths never do: `/api/…`, `/live/…`, `/assets/…`,
//! `/healthz`, `/readyz`, `/metrics`, anything under `/replays/{id}/` or `/videos/{id}/` and
//! any name with an extension answer 404 when nothing else matched them, so a missing segment or script is
//! never answered with HTML.
//!
//! ```no_run
//! let app: axum::Router = axum::Router::new().merge(onair_web::router());
//! ```
#![deny(missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist/"]
struct Dist;

/// For hashed assets: their URL changes whenever their bytes do.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For `index.html`: it names the current assets, so a browser must ask every time.
pub const NO_CACHE: &str = "no-cache";
/// For unhashed files beside `index.html`.
pub const SHORT: &str = "public, max-age=3600";

/// First path segments the server owns; the SPA fallback never answers under them.
const SERVER_PREFIXES: [&str; 6] = ["api", "live", "assets", "healthz", "readyz", "metrics"];

/// A router with no routes of its own, only a fallback: merged last into the server's
/// router, it answers whatever no other route matched.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().fallback(serve)
}

/// What the fallback answers for a request: for a server route that shares a path shape
/// with a client route (`/videos/{file}` is both the video page and `/videos/{id}.flv`), so
/// that route can hand on what is not its own.
pub async fn page(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    serve(method, uri, headers).await
}

/// Whether the app is embedded (false only in a build from a checkout without `web/dist`).
pub fn has_index() -> bool {
    Dist::get("index.html").is_some()
}

/// What to answer for `path`.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// An embedded file, by its name in `web/dist`.
    File(String),
    /// A client route: `index.html`.
    Index,
    NotFound,
}

fn target(path: &str) -> Target {
    let name = path.trim_start_matches('/');
    if !name.is_empty() && name != "index.html" && Dist::get(name).is_some() {
        return Target::File(name.to_owned());
    }
    if is_client_route(path) {
        Target::Index
    } else {
        Target::NotFound
    }
}

fn is_client_route(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let first = segments.first().copied().unwrap_or("");
    if SERVER_PREFIXES.contains(&first) {
        return false;
    }
    // `/replays/{id}` is the replay page, `/videos/{id}` the video page; below them are the
    // media's playlist and segments.
    if matches!(first, "replays" | "videos") && segments.len() > 2 {
        return false;
    }
    // A name with an extension is a file someone expected to exist (an old hashed asset, a
    // robots.txt): HTML in its place would only confuse whoever asked.
    let last = segments.last().copied().unwrap_or("");
    !last.contains('.')
}

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let (name, cache) = match target(uri.path()) {
        Target::File(name) => {
            let cache = if name.starts_with("assets/") {
                IMMUTABLE
            } else {
                SHORT
            };
            (name, cache)
        }
        Target::Index => ("index.html".to_owned(), NO_CACHE),
        Target::NotFound => return not_found(),
    };
    let Some(file) = Dist::get(&name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the web app is not built into this binary: run `npm ci --prefix web && npm run build --prefix web`, then rebuild",
        )
            .into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mime = file.metadata.mimetype();
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(file.data.len()));
        r
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let ok = response.status() == StatusCode::OK;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if ok {
        let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::Request;
    use tower::ServiceExt;

    fn hashed_asset() -> String {
        Dist::iter()
            .find(|n| n.starts_with("assets/") && n.ends_with(".js"))
            .expect("web/dist holds a hashed script")
            .into_owned()
    }

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn client_routes_get_the_index_and_server_paths_never_do() {
        for path in [
            "/",
            "/watch/demo",
            "/replays/12",
            "/videos",
            "/videos/12",
            "/dashboard",
            "/admin",
            "/admin/users",
            "/login",
            "/nowhere/at/all",
        ] {
            assert_eq!(target(path), Target::Index, "{path}");
        }
        for path in [
            "/api/v1/nothing",
            "/api",
            "/live/demo.flv",
            "/live/demo/index.m3u8",
            "/live/a/b/c",
            "/replays/12/index.m3u8",
            "/replays/12/3.ts",
            "/replays/12/x/y",
            "/videos/12.flv",
            "/videos/12/index.m3u8",
            "/videos/12/3.ts",
            "/videos/12/x",
            "/assets/app-0000.js",
            "/healthz",
            "/metrics",
            "/robots.txt",
            "/watch/demo.flv",
        ] {
            assert_eq!(target(path), Target::NotFound, "{path}");
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_and_typed() {
        let name = hashed_asset();
        let r = get(&format!("/{name}"), None).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(header_of(&r, header::CACHE_CONTROL), IMMUTABLE);
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        let body = to_bytes(r.into_body(), usize::MAX).await.expect("body");
        assert!(!body.is_empty());
    }

    #[tokio::test]
    async fn the_index_is_revalidated_every_time_and_answers_304_to_its_etag() {
        let r = get("/watch/demo", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CACHE_CONTROL), NO_CACHE);
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        let etag = header_of(&r, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
        let body = to_bytes(r.into_body(), usize::MAX).await.expect("body");
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("<div id=\"app\">"), "{html}");
        assert!(
            html.contains("/assets/"),
            "the index names its hashed assets: {html}"
        );

        let again = get("/", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&again, header::CACHE_CONTROL), NO_CACHE);
        let other = get("/", Some("\"something else\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_missing_asset_or_a_server_path_is_a_404_not_html() {
        for path in ["/assets/gone-12345678.js", "/api/v2/x", "/replays/1/x/y"] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_ne!(
                header_of(&r, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
        }
    }

    #[tokio::test]
    async fn writes_are_not_answered_with_the_app() {
        let r = router::<()>()
            .oneshot(
                Request::post("/dashboard")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
