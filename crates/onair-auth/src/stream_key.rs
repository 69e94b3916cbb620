//! Stream keys: the JWT a streamer pastes into OBS as the stream name.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::token::{self, IssueError, TokenKind, VerifyError};
use crate::{Jti, Secret, SigningKey};

/// An issued stream key. `Debug` prints `StreamKeyToken([redacted])`.
#[derive(Clone, Debug)]
pub struct StreamKeyToken(Secret<String>);

impl StreamKeyToken {
    /// The key text, to show once to its owner or to publish with.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The key text, still wrapped.
    pub fn into_secret(self) -> Secret<String> {
        self.0
    }
}

/// What a verified stream key says. Revocation (is `jti` still live in the store?) and the
/// owner's ban status are the caller's to check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamKeyClaims {
    /// The channel this key publishes to.
    pub channel_id: i64,
    /// The key's id in the store.
    pub jti: Jti,
    /// When the key was issued, to the second.
    pub issued_at: SystemTime,
    /// When the key stops working, if ever.
    pub expires_at: Option<SystemTime>,
}

/// The claims on the wire. Short names keep the key short; `deny_unknown_fields` keeps a key
/// that we did not mint from passing as one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    sub: TokenKind,
    ch: i64,
    jti: Jti,
    iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// Issues a stream key for `channel_id`, identified by `jti` (which the caller stores so it can
/// revoke the key), valid from `now` for `ttl`, or until revoked if `ttl` is `None`.
pub fn issue_stream_key(
    key: &SigningKey,
    channel_id: i64,
    jti: Jti,
    now: SystemTime,
    ttl: Option<Duration>,
) -> Result<StreamKeyToken, IssueError> {
    let iat = token::issued_at(now)?;
    let exp = ttl.map(|ttl| token::expires_at(iat, ttl)).transpose()?;
    let wire = Wire {
        sub: TokenKind::StreamKey,
        ch: channel_id,
        jti,
        iat,
        exp,
    };
    token::sign(key, &wire).map(|text| StreamKeyToken(Secret::new(text)))
}

/// Checks that `token` is a stream key signed with `key` and unexpired at `now` (expired from
/// `exp` on, inclusive). Reads no clock.
pub fn verify_stream_key(
    key: &SigningKey,
    token: &str,
    now: SystemTime,
) -> Result<StreamKeyClaims, VerifyError> {
    let wire: Wire = token::decode(key, token, TokenKind::StreamKey)?;
    let out_of_range = VerifyError::Malformed {
        len: token.len(),
        reason: "a time is out of range",
    };
    let issued_at = token::system_time(wire.iat).ok_or(out_of_range.clone())?;
    let expires_at = match wire.exp {
        Some(exp) => {
            let exp = token::system_time(exp).ok_or(out_of_range)?;
            token::check_expiry(exp, now)?;
            Some(exp)
        }
        None => None,
    };
    Ok(StreamKeyClaims {
        channel_id: wire.ch,
        jti: wire.jti,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::issue_access_token;
    use crate::token::tests::{at, sign_raw, tamper_claims};

    const NOW: u64 = 1_700_000_000;
    const SECRET: [u8; 32] = [0x5a; 32];

    fn key() -> SigningKey {
        SigningKey::generate(SECRET)
    }

    fn jti() -> Jti {
        Jti::from_random([0xc3; 16])
    }

    fn issue(ttl: Option<Duration>) -> String {
        issue_stream_key(&key(), 42, jti(), at(NOW), ttl)
            .unwrap()
            .expose()
            .to_owned()
    }

    fn is_malformed(result: Result<StreamKeyClaims, VerifyError>) -> bool {
        matches!(result, Err(VerifyError::Malformed { .. }))
    }

    #[test]
    fn round_trip_without_expiry() {
        let token = issue(None);
        let claims = verify_stream_key(&key(), &token, at(NOW)).unwrap();
        assert_eq!(
            claims,
            StreamKeyClaims {
                channel_id: 42,
                jti: jti(),
                issued_at: at(NOW),
                expires_at: None,
            }
        );
        // No exp means valid until revoked, however late `now` is.
        assert!(verify_stream_key(&key(), &token, at(u64::from(u32::MAX) * 100)).is_ok());
    }

    #[test]
    fn round_trip_with_expiry() {
        let token = issue(Some(Duration::from_secs(60)));
        let claims = verify_stream_key(&key(), &token, at(NOW + 59)).unwrap();
        assert_eq!(claims.expires_at, Some(at(NOW + 60)));
        assert_eq!(claims.issued_at, at(NOW));
    }

    #[test]
    fn expired_from_exactly_exp() {
        let token = issue(Some(Duration::from_secs(60)));
        assert!(
            verify_stream_key(&key(), &token, at(NOW + 59) + Duration::from_millis(999)).is_ok()
        );
        assert_eq!(
            verify_stream_key(&key(), &token, at(NOW + 60)),
            Err(VerifyError::Expired { at: at(NOW + 60) })
        );
        assert_eq!(
            verify_stream_key(&key(), &token, at(NOW + 3600)),
            Err(VerifyError::Expired { at: at(NOW + 60) })
        );
    }

    #[test]
    fn zero_ttl_is_expired_at_once() {
        let token = issue(Some(Duration::ZERO));
        assert!(matches!(
            verify_stream_key(&key(), &token, at(NOW)),
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn issue_refuses_times_it_cannot_express() {
        let before_epoch = std::time::UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            issue_stream_key(&key(), 1, jti(), before_epoch, None),
            Err(IssueError::BeforeEpoch { .. })
        ));
        assert!(matches!(
            issue_stream_key(&key(), 1, jti(), at(NOW), Some(Duration::MAX)),
            Err(IssueError::TtlOutOfRange { .. })
        ));
    }

    #[test]
    fn short_and_url_safe_for_obs() {
        assert!(issue(None).len() <= 180, "{}", issue(None));
        let token = issue(Some(Duration::from_secs(365 * 24 * 3600)));
        assert!(token.len() <= 210, "{} bytes: {token}", token.len());
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "{token}"
        );
        assert_eq!(token.split('.').next(), Some("eyJhbGciOiJIUzI1NiJ9"));
    }

    #[test]
    fn other_signing_key_is_bad_signature() {
        let token = issue(None);
        let other = SigningKey::generate([0xa5; 32]);
        assert_eq!(
            verify_stream_key(&other, &token, at(NOW)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn forged_signature_is_bad_signature() {
        let token = issue(None);
        let (message, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode([0x11; 32]));
        assert_eq!(
            verify_stream_key(&key(), &forged, at(NOW)),
            Err(VerifyError::BadSignature)
        );
        let empty = format!("{message}.");
        assert!(verify_stream_key(&key(), &empty, at(NOW)).is_err());
    }

    #[test]
    fn tampered_claims_keep_a_valid_looking_signature_but_fail() {
        let token = issue(Some(Duration::from_secs(60)));
        let other_channel = tamper_claims(&token, |claims| {
            claims.insert("ch".into(), json!(7));
        });
        let no_expiry = tamper_claims(&token, |claims| {
            claims.remove("exp");
        });
        let later_expiry = tamper_claims(&token, |claims| {
            claims.insert("exp".into(), json!(NOW + 1_000_000));
        });
        for tampered in [other_channel, no_expiry, later_expiry] {
            assert_ne!(tampered, token);
            assert_eq!(
                verify_stream_key(&key(), &tampered, at(NOW)),
                Err(VerifyError::BadSignature),
                "{tampered}"
            );
        }
    }

    #[test]
    fn other_algorithms_are_refused_even_with_our_secret() {
        let claims = json!({ "sub": "stream-key", "ch": 42, "jti": jti(), "iat": NOW });
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_raw(algorithm, &SECRET, &claims);
            assert_eq!(
                verify_stream_key(&key(), &token, at(NOW)),
                Err(VerifyError::BadSignature),
                "{algorithm:?}"
            );
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        for unsigned in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(
                is_malformed(verify_stream_key(&key(), &unsigned, at(NOW))),
                "{unsigned}"
            );
        }
    }

    #[test]
    fn malformed_strings() {
        let token = issue(None);
        let (header, rest) = token.split_once('.').unwrap();
        let too_long = format!("{token}{}", "A".repeat(crate::MAX_TOKEN_LEN));
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "abc".into(),
            "a.b".into(),
            "a.b.c".into(),
            format!("{token}.x"),
            format!("{header}.{header}.{rest}"),
            format!("{header}.!!!!.{}", rest.split_once('.').unwrap().1),
            format!("{header}.{}.sig", URL_SAFE_NO_PAD.encode("not json")),
            "live/stream".into(),
            "ключ.ключ.ключ".into(),
            format!(" {token}"),
            too_long.clone(),
        ];
        for case in &cases {
            let result = verify_stream_key(&key(), case, at(NOW));
            assert!(
                is_malformed(result.clone()) || result == Err(VerifyError::BadSignature),
                "{case:?}: {result:?}"
            );
        }
        assert!(is_malformed(verify_stream_key(&key(), "", at(NOW))));
        assert_eq!(
            verify_stream_key(&key(), &too_long, at(NOW)),
            Err(VerifyError::Malformed {
                len: too_long.len(),
                reason: "longer than MAX_TOKEN_LEN",
            })
        );
    }

    #[test]
    fn signed_claims_we_never_mint_are_malformed() {
        let cases = [
            json!({ "ch": 42, "jti": jti(), "iat": NOW }),
            json!({ "sub": "admin", "ch": 42, "jti": jti(), "iat": NOW }),
            json!({ "sub": "stream-key", "ch": "42", "jti": jti(), "iat": NOW }),
            json!({ "sub": "stream-key", "ch": 42, "jti": "1234", "iat": NOW }),
            json!({ "sub": "stream-key", "ch": 42, "jti": jti(), "iat": NOW, "exp": -1 }),
            json!({ "sub": "stream-key", "ch": 42, "jti": jti(), "iat": NOW, "admin": true }),
            json!({ "sub": "stream-key", "ch": 42, "jti": jti(), "iat": u64::MAX }),
            json!(["stream-key", 42]),
        ];
        for claims in cases {
            let token = sign_raw(Algorithm::HS256, &SECRET, &claims);
            let result = verify_stream_key(&key(), &token, at(NOW));
            assert!(is_malformed(result.clone()), "{claims}: {result:?}");
        }
    }

    #[test]
    fn access_token_is_not_a_stream_key() {
        let token =
            issue_access_token(&key(), 42, "admin", jti(), at(NOW), Duration::from_secs(60))
                .unwrap();
        assert_eq!(
            verify_stream_key(&key(), token.expose(), at(NOW)),
            Err(VerifyError::WrongKind {
                expected: TokenKind::StreamKey,
                found: TokenKind::Access,
            })
        );
    }

    #[test]
    fn debug_is_redacted() {
        let token = issue_stream_key(&key(), 42, jti(), at(NOW), None).unwrap();
        let debug = format!("{token:?}");
        assert_eq!(debug, "StreamKeyToken([redacted])");
        assert_eq!(format!("{:?}", token.clone().into_secret()), "[redacted]");
        let error =
            verify_stream_key(&SigningKey::generate([1; 32]), token.expose(), at(NOW)).unwrap_err();
        assert!(!format!("{error} {error:?}").contains(token.expose()));
    }

    fn any_token_shape() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,160}\\.[A-Za-z0-9_-]{0,64}",
            "eyJhbGciOiJIUzI1NiJ9\\.[A-Za-z0-9_-]{0,160}\\.[A-Za-z0-9_-]{43}",
            "[ -~]{0,300}",
        ]
    }

    proptest! {
        #[test]
        fn random_strings_never_verify(text in any_token_shape(), now in any::<u64>()) {
            let now = at(now % (1 << 40));
            prop_assert!(verify_stream_key(&key(), &text, now).is_err());
            prop_assert!(crate::verify_access_token(&key(), &text, now).is_err());
        }

        #[test]
        fn any_one_character_change_is_refused(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
            let token = issue(None);
            let index = index.index(token.len());
            let replacement = replacement.as_bytes()[0];
            prop_assume!(token.as_bytes()[index] != replacement);
            let mut bytes = token.into_bytes();
            bytes[index] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(verify_stream_key(&key(), &changed, at(NOW)).is_err(), "{}", changed);
        }
    }
}
