//! Authentication primitives for OnAir: stream keys, access tokens, password hashes and secrets.
//!
//! | concern | follows | how |
//! | --- | --- | --- |
//! | stream keys, access tokens | RFC 7519 (JWT), RFC 7515 (JWS, compact form), RFC 7518 §3.2 (HS256) | [`issue_stream_key`] / [`verify_stream_key`], [`issue_access_token`] / [`verify_access_token`] |
//! | token ids | RFC 7519 §4.1.7 (`jti`) | [`Jti`]: 128 caller-provided random bits as 32 lowercase hex digits; the store's revocation handle |
//! | signing key | RFC 7518 §3.2 (a key of at least the hash size, 256 bits) | [`SigningKey`], persisted as standard base64 (RFC 4648 §4) |
//! | passwords | RFC 9106 (Argon2id), PHC string format | [`Hasher`] (reused working memory) / [`hash_password`] / [`verify_password`], at a [`HashCost`] |
//! | redaction | — | [`Secret<T>`]: `Debug`, `Display` and `Serialize` print `[redacted]` |
//!
//! The crate never reads the clock and never draws randomness: the caller passes `now`, the
//! `jti`, the salt and the key material. That keeps every check deterministic and testable with
//! fixed times, in the same sans-IO spirit as the protocol crates.
//!
//! Expiry is exclusive: a token with `exp = T` is valid while `now < T` and is refused from
//! `now == T` on, as RFC 7519 §4.1.4 requires ("the current date/time MUST be before the
//! expiration date/time"). There is no leeway; times are compared in whole seconds.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use onair_auth::{issue_stream_key, verify_stream_key, Jti, SigningKey, VerifyError};
//!
//! let key = SigningKey::generate([7; 32]); // the server passes 32 bytes from the OS RNG
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let jti = Jti::from_random([9; 16]);
//! let token = issue_stream_key(&key, 42, jti.clone(), now, Some(Duration::from_secs(3600))).unwrap();
//!
//! // What OBS sends as the stream name:
//! let claims = verify_stream_key(&key, token.expose(), now).unwrap();
//! assert_eq!((claims.channel_id, &claims.jti), (42, &jti));
//!
//! let later = now + Duration::from_secs(3600);
//! assert!(matches!(verify_stream_key(&key, token.expose(), later), Err(VerifyError::Expired { .. })));
//! println!("{token:?}"); // prints StreamKeyToken([redacted])
//! ```
#![deny(missing_docs)]

mod access_token;
mod jti;
mod password;
mod secret;
mod signing_key;
mod stream_key;
mod token;

pub use access_token::{AccessClaims, AccessToken, issue_access_token, verify_access_token};
pub use jti::{Jti, JtiError};
pub use password::{
    HashCost, Hasher, MAX_MEMORY_KIB, PasswordError, PasswordHash, hash_password, needs_rehash,
    verify_password,
};
pub use secret::{REDACTED, Secret};
pub use signing_key::{SigningKey, SigningKeyError};
pub use stream_key::{StreamKeyClaims, StreamKeyToken, issue_stream_key, verify_stream_key};
pub use token::{IssueError, MAX_TOKEN_LEN, TokenKind, VerifyError};
