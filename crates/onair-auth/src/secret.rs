//! [`Secret<T>`]: a value that must never reach a log.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A value that must never be printed: `Debug`, `Display` and `Serialize` all produce
/// `[redacted]`. Read the value with [`Secret::expose`], at the one place that needs it.
///
/// `Deserialize` is transparent, so a `Secret<String>` can sit in a config struct; serializing
/// that struct for the "effective config" log line then redacts it.
///
/// `==` (and [`Secret::matches`]) compares in constant time: the SHA-256 digests of both
/// sides, all 32 bytes, so neither where two values differ nor their lengths show in timing.
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Call this only where the value is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsRef<[u8]>> Secret<T> {
    /// Whether the secret equals `other`, in time that depends neither on where they differ
    /// nor on their lengths, so a client cannot find a key byte by byte, or its length, from
    /// response times.
    pub fn matches(&self, other: impl AsRef<[u8]>) -> bool {
        let a = Sha256::digest(self.0.as_ref());
        let b = Sha256::digest(other.as_ref());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_ref())
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_redact() {
        let secret = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(serde_json::to_string(&secret).unwrap(), r#""[redacted]""#);
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn redacts_inside_containers() {
        #[derive(Debug, Serialize)]
        struct Config {
            name: &'static str,
            password: Secret<String>,
            token: Option<Secret<String>>,
        }
        let config = Config {
            name: "demo",
            password: Secret::new("hunter2".into()),
            token: Some(Secret::new("eyJhbGciOi".into())),
        };
        let debug = format!("{config:?}");
        let json = serde_json::to_string(&config).unwrap();
        for text in [&debug, &json] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("eyJhbGciOi"), "{text}");
            assert!(text.contains("demo"), "{text}");
        }
    }

    #[test]
    fn matches_compares_the_whole_value() {
        let k = Secret::new(String::from("abc123secret"));
        assert!(k.matches("abc123secret"));
        assert!(!k.matches("abc123secreT"));
        assert!(!k.matches("abc"));
        assert!(!k.matches("abc123secret "));
        assert!(!k.matches(""));
        assert_eq!(k, Secret::new("abc123secret".into()));
        assert_ne!(k, Secret::new("abc123secreT".into()));
    }

    #[test]
    fn deserialize_is_transparent() {
        let secret: Secret<String> = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(secret.into_inner(), "hunter2");
    }
}
