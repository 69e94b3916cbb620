//! [`SigningKey`]: the server's HS256 secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::Secret;

/// The HMAC-SHA256 secret that signs stream keys and access tokens.
///
/// `Debug` prints `SigningKey([redacted])`. Store it with [`SigningKey::to_base64`] and load it
/// with [`SigningKey::from_base64`].
#[derive(Clone)]
pub struct SigningKey {
    bytes: Secret<Vec<u8>>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why key material was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// Fewer bytes than HS256 needs.
    #[error("signing key is {len} bytes; HS256 needs at least {min} (RFC 7518 §3.2)")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// [`SigningKey::MIN_LEN`].
        min: usize,
    },
    /// The stored text is not standard base64.
    #[error("signing key is not valid base64")]
    Base64(#[source] base64::DecodeError),
}

impl SigningKey {
    /// The shortest key accepted: RFC 7518 §3.2 requires a key at least as long as the
    /// SHA-256 output.
    pub const MIN_LEN: usize = 32;

    /// A new key from 32 bytes the caller drew from a cryptographic RNG.
    pub fn generate(random: [u8; 32]) -> Self {
        Self::build(random.to_vec())
    }

    /// A key from existing material, such as a secret given in the config file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigningKeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(SigningKeyError::TooShort {
                len: bytes.len(),
                min: Self::MIN_LEN,
            });
        }
        Ok(Self::build(bytes.to_vec()))
    }

    /// Loads a key written by [`SigningKey::to_base64`] (standard alphabet, padded).
    pub fn from_base64(text: &str) -> Result<Self, SigningKeyError> {
        let bytes = STANDARD.decode(text).map_err(SigningKeyError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The key as standard padded base64, for the store's settings table.
    pub fn to_base64(&self) -> Secret<String> {
        Secret::new(STANDARD.encode(self.bytes.expose()))
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    fn build(bytes: Vec<u8>) -> Self {
        Self {
            encoding: EncodingKey::from_secret(&bytes),
            decoding: DecodingKey::from_secret(&bytes),
            bytes: Secret::new(bytes),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SigningKey").field(&self.bytes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let key = SigningKey::generate(std::array::from_fn(|i| i as u8));
        let text = key.to_base64();
        assert_eq!(text.expose().len(), 44);
        let loaded = SigningKey::from_base64(text.expose()).unwrap();
        assert_eq!(loaded.bytes.expose(), key.bytes.expose());
    }

    #[test]
    fn refuses_short_keys() {
        assert!(matches!(
            SigningKey::from_bytes(&[1; 31]),
            Err(SigningKeyError::TooShort { len: 31, min: 32 })
        ));
        let short = STANDARD.encode([1; 16]);
        assert!(matches!(
            SigningKey::from_base64(&short),
            Err(SigningKeyError::TooShort { len: 16, .. })
        ));
        assert!(SigningKey::from_bytes(&[1; 64]).is_ok());
    }

    #[test]
    fn refuses_bad_base64() {
        for text in ["not base64!", "AAAA=AAA", "é"] {
            assert!(
                matches!(
                    SigningKey::from_base64(text),
                    Err(SigningKeyError::Base64(_))
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let key = SigningKey::generate([0xab; 32]);
        let debug = format!("{key:?}");
        assert_eq!(debug, "SigningKey([redacted])");
        assert!(!debug.contains("171"));
    }
}
