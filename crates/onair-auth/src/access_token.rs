//! Access tokens: short-lived JWTs for REST API sessions.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::token::{self, IssueError, TokenKind, VerifyError};
use crate::{Jti, Secret, SigningKey};

/// An issued access token, sent as `Authorization: Bearer …`. `Debug` prints
/// `AccessToken([redacted])`.
#[derive(Clone, Debug)]
pub struct AccessToken(Secret<String>);

impl AccessToken {
    /// The token text, to hand to the client that logged in.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The token text, still wrapped.
    pub fn into_secret(self) -> Secret<String> {
        self.0
    }
}

/// What a verified access token says. Whether the user is still allowed in (not banned, role
/// unchanged, not logged out) is the caller's to check against the store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessClaims {
    /// The user the token was issued to.
    pub user_id: i64,
    /// The user's role when the token was issued (`admin`, `streamer` or `viewer`).
    pub role: String,
    /// The token's id, for a logout deny-list.
    pub jti: Jti,
    /// When the token was issued, to the second.
    pub issued_at: SystemTime,
    /// When the token stops working.
    pub expires_at: SystemTime,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    sub: TokenKind,
    uid: i64,
    role: String,
    jti: Jti,
    iat: u64,
    exp: u64,
}

/// Issues an access token for `user_id` with `role`, identified by `jti`, valid from `now`
/// for `ttl`. Access tokens always expire.
pub fn issue_access_token(
    key: &SigningKey,
    user_id: i64,
    role: &str,
    jti: Jti,
    now: SystemTime,
    ttl: Duration,
) -> Result<AccessToken, IssueError> {
    let iat = token::issued_at(now)?;
    let wire = Wire {
        sub: TokenKind::Access,
        uid: user_id,
        role: role.to_owned(),
        jti,
        iat,
        exp: token::expires_at(iat, ttl)?,
    };
    token::sign(key, &wire).map(|text| AccessToken(Secret::new(text)))
}

/// Checks that `token` is an access token signed with `key` and unexpired at `now` (expired
/// from `exp` on, inclusive). Reads no clock.
pub fn verify_access_token(
    key: &SigningKey,
    token: &str,
    now: SystemTime,
) -> Result<AccessClaims, VerifyError> {
    let wire: Wire = token::decode(key, token, TokenKind::Access)?;
    let out_of_range = VerifyError::Malformed {
        len: token.len(),
        reason: "a time is out of range",
    };
    let issued_at = token::system_time(wire.iat).ok_or(out_of_range.clone())?;
    let expires_at = token::system_time(wire.exp).ok_or(out_of_range)?;
    token::check_expiry(expires_at, now)?;
    Ok(AccessClaims {
        user_id: wire.uid,
        role: wire.role,
        jti: wire.jti,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::issue_stream_key;
    use crate::token::tests::{at, sign_raw, tamper_claims};

    const NOW: u64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(900);

    fn key() -> SigningKey {
        SigningKey::generate([0x3c; 32])
    }

    fn jti() -> Jti {
        Jti::from_random([0x7e; 16])
    }

    fn issue(role: &str) -> String {
        issue_access_token(&key(), 9, role, jti(), at(NOW), TTL)
            .unwrap()
            .expose()
            .to_owned()
    }

    #[test]
    fn round_trip() {
        let claims = verify_access_token(&key(), &issue("streamer"), at(NOW + 1)).unwrap();
        assert_eq!(
            claims,
            AccessClaims {
                user_id: 9,
                role: "streamer".into(),
                jti: jti(),
                issued_at: at(NOW),
                expires_at: at(NOW + 900),
            }
        );
    }

    #[test]
    fn expired_from_exactly_exp() {
        let token = issue("viewer");
        assert!(verify_access_token(&key(), &token, at(NOW + 899)).is_ok());
        assert_eq!(
            verify_access_token(&key(), &token, at(NOW + 900)),
            Err(VerifyError::Expired { at: at(NOW + 900) })
        );
    }

    #[test]
    fn other_signing_key_is_bad_signature() {
        let other = SigningKey::generate([0xc3; 32]);
        assert_eq!(
            verify_access_token(&other, &issue("viewer"), at(NOW)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn tampered_role_is_bad_signature() {
        let token = issue("viewer");
        let escalated = tamper_claims(&token, |claims| {
            claims.insert("role".into(), json!("admin"));
        });
        let other_user = tamper_claims(&token, |claims| {
            claims.insert("uid".into(), json!(1));
        });
        for tampered in [escalated, other_user] {
            assert_eq!(
                verify_access_token(&key(), &tampered, at(NOW)),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn stream_key_is_not_an_access_token() {
        let key = key();
        let stream_key = issue_stream_key(&key, 9, jti(), at(NOW), None).unwrap();
        assert_eq!(
            verify_access_token(&key, stream_key.expose(), at(NOW)),
            Err(VerifyError::WrongKind {
                expected: TokenKind::Access,
                found: TokenKind::StreamKey,
            })
        );
    }

    #[test]
    fn access_token_without_exp_is_malformed() {
        let claims =
            json!({ "sub": "access", "uid": 9, "role": "admin", "jti": jti(), "iat": NOW });
        let token = sign_raw(Algorithm::HS256, &[0x3c; 32], &claims);
        assert!(matches!(
            verify_access_token(&key(), &token, at(NOW)),
            Err(VerifyError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_strings() {
        for text in ["", "Bearer", "a.b.c", "\0.\0.\0"] {
            assert!(
                matches!(
                    verify_access_token(&key(), text, at(NOW)),
                    Err(VerifyError::Malformed { .. })
                ),
                "{text:?}"
            );
        }
        // The signature is checked before the claims are read: an empty one is simply wrong.
        assert_eq!(
            verify_access_token(&key(), "eyJhbGciOiJIUzI1NiJ9..", at(NOW)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let token = issue_access_token(&key(), 9, "admin", jti(), at(NOW), TTL).unwrap();
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert_eq!(token.clone().into_secret().to_string(), "[redacted]");
    }
}
