//! Extractors whose rejections are [`ApiError`]s: a body that is not JSON, a missing or
//! mistyped field, a bad query or path parameter all answer problem+json 400 naming the field.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, FieldError, ProblemKind};

/// A JSON request body. Unlike `axum::Json`, a malformed body, a missing field or a value of
/// the wrong type is a problem+json 400 whose `errors` name the field (`tags[1]`, `title`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                ProblemKind::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].contains('/')
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(e) = cause {
        if e.is::<crate::net::BodyTimedOut>() {
            return ApiError::new(
                ProblemKind::RequestTimeout,
                "the request body did not arrive in time",
            );
        }
        cause = e.source();
    }
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ProblemKind::PayloadTooLarge,
            "the request body is larger than the server accepts",
        )
    } else {
        ApiError::invalid_field("body", "the request body could not be read")
    }
}

/// Parses a JSON body, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let error = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                FieldError::new(
                    "body",
                    format!(
                        "not valid JSON (line {}, column {})",
                        inner.line(),
                        inner.column()
                    ),
                )
            }
            _ => field_error(&path, &strip_position(&inner.to_string())),
        };
        ApiError::invalid(vec![error])
    })?;
    // Trailing bytes after the value ("{}x") are a syntax error too.
    deserializer.end().map_err(|inner| {
        ApiError::invalid_field(
            "body",
            format!(
                "not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; for a field error the field says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A serde error at `path` (`.` for the root). serde reports a missing or unknown field at
/// the enclosing object, naming the field in backticks: take the name from the message.
fn field_error(path: &str, message: &str) -> FieldError {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let unknown = message.starts_with("unknown field `");
    let field = match (path, named) {
        ("." | "", Some(name)) => name.to_owned(),
        // serde_path_to_error has already stepped into an unknown field's key.
        (path, Some(_)) if unknown => path.to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        ("." | "", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    };
    let message = if unknown {
        // serde lists every expected field; the schema already says that.
        "unknown field".to_owned()
    } else if message.starts_with("missing field `") {
        "required".to_owned()
    } else {
        message.to_owned()
    };
    FieldError::new(field, message)
}

/// Query parameters; a bad value is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_query(query).map(Query)
    }
}

/// Parses a query string, naming the offending parameter on failure.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let error = field_error(&path, &error.into_inner().to_string());
        ApiError::invalid(vec![error])
    })
}

/// Path parameters; a value of the wrong type (`/admin/users/abc`) is a 400 naming it.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                // A lone parameter (`/users/{id}`) is reported without its name: take it from
                // the route, like the parameter at an index of a tuple.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(k, _)| k.to_owned()).collect())
                    .unwrap_or_default();
                let at = |index: usize| names.get(index).cloned().unwrap_or_else(|| "path".into());
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    ErrorKind::ParseError { .. } => at(0),
                    ErrorKind::ParseErrorAtIndex { index, .. } => at(*index),
                    _ => "path".to_owned(),
                };
                let message = match e.kind() {
                    ErrorKind::ParseErrorAtKey { expected_type, .. }
                    | ErrorKind::ParseError { expected_type, .. }
                    | ErrorKind::ParseErrorAtIndex { expected_type, .. } => {
                        format!("expected {}", friendly_type(expected_type))
                    }
                    ErrorKind::InvalidUtf8InPathParam { .. } => "not valid UTF-8".to_owned(),
                    other => other.to_string(),
                };
                Err(ApiError::invalid_field(field, message))
            }
            Err(e) => Err(ApiError::internal(format!("path extraction: {e}"))),
        }
    }
}

fn friendly_type(rust: &str) -> &str {
    match rust {
        "i64" | "i32" | "u64" | "u32" => "an integer",
        other => other,
    }
}

/// The client's address, from the socket (never from `X-Forwarded-For`, which any client can
/// write). An IPv6 client counts as its /64: one subscriber line is given a whole /64, so
/// per-address limits would otherwise be trivial to dodge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The limiter's key for `ip`.
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientIp(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientIp(IpAddr::V4(v4)),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    ClientIp(IpAddr::V6(Ipv6Addr::from(segments)))
                }
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // `http::serve` always serves with connect info; a router driven without it (a test
        // that does not set one) counts every caller as one unknown address.
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |ConnectInfo(addr)| {
                addr.ip()
            });
        Ok(ClientIp::from_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        tags: Option<Vec<String>>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn fields(result: Result<Body, ApiError>) -> Vec<(String, String)> {
        let problem = result.unwrap_err().problem();
        assert_eq!(problem.status, 400);
        problem
            .errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            fields(parse_json(b"{}")),
            [("title".into(), "required".into())]
        );
        assert_eq!(
            fields(parse_json(br#"{"title": 5}"#)),
            [(
                "title".into(),
                "invalid type: integer `5`, expected a string".into()
            )]
        );
        assert_eq!(
            fields(parse_json(br#"{"title": "x", "tags": ["a", 1]}"#))[0].0,
            "tags[1]"
        );
        assert_eq!(
            fields(parse_json(br#"{"title": "x", "colour": 1}"#)),
            [("colour".into(), "unknown field".into())]
        );
        assert_eq!(
            fields(parse_json(br#"{"title": "x", "inner": {}}"#))[0].0,
            "inner.n"
        );
        assert_eq!(
            fields(parse_json(br#"{"title": "x", "inner": {"n": -1}}"#))[0].0,
            "inner.n"
        );
        let malformed = fields(parse_json(br#"{"title": "#));
        assert_eq!(malformed[0].0, "body");
        assert!(
            malformed[0].1.starts_with("not valid JSON"),
            "{malformed:?}"
        );
        assert_eq!(fields(parse_json(br#"{"title": "x"} x"#))[0].0, "body");
        assert_eq!(fields(parse_json(b"[]"))[0].0, "body");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Paging {
        offset: Option<u32>,
        live: Option<bool>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let problem = parse_query::<Paging>("offset=-1").unwrap_err().problem();
        assert_eq!(problem.errors[0].field, "offset");
        let problem = parse_query::<Paging>("live=yes").unwrap_err().problem();
        assert_eq!(problem.errors[0].field, "live");
        assert!(parse_query::<Paging>("").is_ok());
        assert!(parse_query::<Paging>("offset=3&live=true").is_ok());
    }

    #[test]
    fn content_types() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("+json", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), ok, "{value}");
        }
    }

    #[test]
    fn ipv6_clients_count_as_their_64() {
        let a = ClientIp::from_ip("2001:db8:1:2:3:4:5:6".parse().unwrap());
        let b = ClientIp::from_ip("2001:db8:1:2:ffff::1".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            ClientIp::from_ip("::ffff:192.0.2.1".parse().unwrap()),
            ClientIp::from_ip("192.0.2.1".parse().unwrap())
        );
    }
}
