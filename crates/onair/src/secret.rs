//! Secrets that must never reach a log line: their `Debug`, `Display` and `Serialize` print
//! `[redacted]`, and the only way to the value is the explicit [`StreamKey::expose`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A stream key (the publish name a streamer types into OBS).
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    /// Wraps a key.
    pub fn new(key: String) -> Self {
        StreamKey(key)
    }

    /// The key itself, for comparing or signing; never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time that depends neither on where the keys differ nor on their lengths,
    /// so a publisher cannot find a key byte by byte, or its length, from response times: the
    /// SHA-256 digests of both are compared, always all 32 bytes.
    pub fn matches(&self, other: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(other.as_bytes());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for StreamKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for StreamKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StreamKey)
    }
}

/// Any other secret text from the configuration: a signing secret, a database URL (which may
/// carry a password).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: String) -> Self {
        SecretText(text)
    }

    /// The secret itself, for use; never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_formats_as_itself() {
        let k = StreamKey::new("abc123secret".into());
        assert_eq!(format!("{k}"), REDACTED);
        assert_eq!(format!("{k:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert!(k.matches("abc123secret"));
        assert!(!k.matches("abc123secreT"));
        assert!(!k.matches("abc"));
        assert!(!k.matches("abc123secret "));
        assert!(!k.matches(""));
    }

    #[test]
    fn secret_text_never_formats_as_itself() {
        let s = SecretText::new("postgres://u:pw@db/x".into());
        assert_eq!(format!("{s} {s:?}"), format!("{REDACTED} {REDACTED}"));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(s.expose(), "postgres://u:pw@db/x");
    }
}
