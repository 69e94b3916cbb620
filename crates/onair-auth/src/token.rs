//! What stream keys and access tokens share: the JWT kinds, signing, decoding and expiry.
//!
//! Both kinds are compact HS256 JWS (RFC 7515 §7.1) with a header of just `{"alg":"HS256"}`:
//! `typ` is left out (RFC 7519 §5.1 makes it optional) so that a stream key stays short enough
//! to paste into OBS. The `sub` claim names the kind, so one kind is never accepted as the other.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::SigningKey;

/// Longest token [`verify_stream_key`](crate::verify_stream_key) and
/// [`verify_access_token`](crate::verify_access_token) look at; anything longer is
/// [`VerifyError::Malformed`] before any decoding. Real tokens are under 300 bytes.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Which kind of token a JWT is, from its `sub` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenKind {
    /// A stream key (`"sub": "stream-key"`): authorises publishing to one channel.
    #[serde(rename = "stream-key")]
    StreamKey,
    /// An access token (`"sub": "access"`): a REST API session.
    #[serde(rename = "access")]
    Access,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::StreamKey => "stream key",
            TokenKind::Access => "access token",
        })
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// `now` is before 1970, which JWT times cannot express.
    #[error("issue time {now:?} is before the Unix epoch")]
    BeforeEpoch {
        /// The offending `now`.
        now: SystemTime,
    },
    /// `now + ttl` is past what a `SystemTime` can hold.
    #[error("time to live {ttl:?} puts the expiry out of range")]
    TtlOutOfRange {
        /// The offending time to live.
        ttl: Duration,
    },
    /// The JWT library failed to sign (only if its crypto backend is misconfigured).
    #[error("signing the token failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Why a token was refused.
///
/// No variant carries the token: tokens are secrets and this error is meant to be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWT we could have issued: wrong shape, bad base64 or JSON, unknown claims, too long.
    #[error("token ({len} bytes) is malformed: {reason}")]
    Malformed {
        /// Length of the presented token in bytes.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Well formed, but not signed with this server's key and HS256.
    #[error("token signature does not match the server's key")]
    BadSignature,
    /// Signed by us, but `now` is at or past its `exp`.
    #[error("token expired at unix time {}", unix_secs(at))]
    Expired {
        /// The token's `exp`.
        at: SystemTime,
    },
    /// Signed by us, but a different kind of token than the one asked for.
    #[error("{found} presented where {expected} is required")]
    WrongKind {
        /// The kind the caller asked for.
        expected: TokenKind,
        /// The kind the token is.
        found: TokenKind,
    },
}

fn unix_secs(at: &SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Seconds since the epoch for `iat`.
pub(crate) fn issued_at(now: SystemTime) -> Result<u64, IssueError> {
    now.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .map_err(|_| IssueError::BeforeEpoch { now })
}

/// `exp` for a token issued at `iat` that lives `ttl`, rounded up to a whole second so that a
/// sub-second `ttl` still yields a token that is valid for a moment.
pub(crate) fn expires_at(iat: u64, ttl: Duration) -> Result<u64, IssueError> {
    let ttl_secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    iat.checked_add(ttl_secs)
        .filter(|&exp| system_time(exp).is_some())
        .ok_or(IssueError::TtlOutOfRange { ttl })
}

/// The `SystemTime` for a JWT time, if the platform can represent it.
pub(crate) fn system_time(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

pub(crate) fn sign<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, IssueError> {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = None;
    jsonwebtoken::encode(&header, claims, key.encoding()).map_err(IssueError::Sign)
}

/// Checks the shape, signature and kind of `token`, then decodes its claims as `C`.
/// Expiry is left to the caller, which knows where `exp` is.
pub(crate) fn decode<C: DeserializeOwned>(
    key: &SigningKey,
    token: &str,
    expected: TokenKind,
) -> Result<C, VerifyError> {
    let malformed = |reason| VerifyError::Malformed {
        len: token.len(),
        reason,
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("longer than MAX_TOKEN_LEN"));
    }
    // jsonwebtoken reads the system clock when it validates exp or nbf itself; we turn all of
    // its claim checks off and check exp against the caller's `now` instead.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding(), &validation)
        .map_err(|error| match error.kind() {
            // A different algorithm (HS384, RS256, …) in the header is a token not signed the
            // way we sign; report it as a bad signature rather than a parse failure.
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => VerifyError::BadSignature,
            ErrorKind::Base64(_) => malformed("a part is not base64url"),
            ErrorKind::Json(_) => malformed("the header or claims are not the expected JSON"),
            ErrorKind::Utf8(_) => malformed("the header or claims are not UTF-8"),
            _ => malformed("not a JWT (header.claims.signature)"),
        })?
        .claims;
    let found = claims
        .get("sub")
        .and_then(|sub| TokenKind::deserialize(sub).ok())
        .ok_or_else(|| malformed("sub names no known token kind"))?;
    if found != expected {
        return Err(VerifyError::WrongKind { expected, found });
    }
    serde_json::from_value(Value::Object(claims))
        .map_err(|_| malformed("claims do not match the token kind"))
}

/// Refuses a token whose `exp` is at or before `now` (RFC 7519 §4.1.4: valid only *before*
/// `exp`). A `now` before the epoch counts as the epoch.
pub(crate) fn check_expiry(exp: SystemTime, now: SystemTime) -> Result<(), VerifyError> {
    // Whole seconds on both sides: `exp` has no fraction, and truncating `now` keeps the
    // boundary exactly at the second `exp` names.
    if unix_secs(&now) >= unix_secs(&exp) {
        Err(VerifyError::Expired { at: exp })
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// `secs` after the epoch.
    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Rewrites the claims of `token` with `edit`, keeping its header and signature.
    pub(crate) fn tamper_claims(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let mut claims: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        edit(&mut claims);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    }

    /// A token with any header and claims, signed with `secret` under `algorithm`.
    pub(crate) fn sign_raw(algorithm: Algorithm, secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn expiry_is_exclusive_at_exp() {
        assert_eq!(check_expiry(at(100), at(99)), Ok(()));
        assert_eq!(
            check_expiry(at(100), at(100)),
            Err(VerifyError::Expired { at: at(100) })
        );
        assert_eq!(
            check_expiry(at(100), at(100) + Duration::from_millis(999)),
            Err(VerifyError::Expired { at: at(100) })
        );
        assert_eq!(
            check_expiry(at(100), at(99) + Duration::from_millis(999)),
            Ok(())
        );
    }

    #[test]
    fn now_before_epoch_counts_as_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(check_expiry(at(1), before), Ok(()));
        assert!(matches!(
            issued_at(before),
            Err(IssueError::BeforeEpoch { .. })
        ));
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(expires_at(100, Duration::from_millis(1)).unwrap(), 101);
        assert_eq!(expires_at(100, Duration::from_secs(5)).unwrap(), 105);
        assert_eq!(expires_at(100, Duration::ZERO).unwrap(), 100);
        assert!(matches!(
            expires_at(100, Duration::MAX),
            Err(IssueError::TtlOutOfRange { .. })
        ));
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            VerifyError::Expired {
                at: at(1_700_000_000)
            }
            .to_string(),
            "token expired at unix time 1700000000"
        );
        assert_eq!(
            VerifyError::WrongKind {
                expected: TokenKind::StreamKey,
                found: TokenKind::Access
            }
            .to_string(),
            "access token presented where stream key is required"
        );
    }
}
