//! [`Secret<T>`]: a value that must never reach a log.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "[redacted]";

/// A value that must never be printed: `Debug`, `Display` and `Serialize` all produce
/// `[redacted]`. Read the value with [`Secret::expose`], at the one place that needs it.
///
/// `Deserialize` is transparent, so a `Secret<String>` can sit in a config struct; serializing
/// that struct for the "effective config" log line then redacts it.
///
/// There is deliberately no `PartialEq`: comparing secrets with `==` is not constant-time.
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
    fn deserialize_is_transparent() {
        let secret: Secret<String> = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(secret.into_inner(), "hunter2");
    }
}
