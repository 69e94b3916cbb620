//! Secrets in the server's configuration and connections. There is one secret type,
//! [`onair_auth::Secret`]: its `Debug`, `Display` and `Serialize` print `[redacted]`, `==`
//! compares in constant time, and the only way to the value is the explicit `expose`. The
//! names below say what a secret holds where the server keeps one.

pub use onair_auth::{REDACTED, Secret};

/// A stream key (the publish name a streamer types into OBS).
pub type StreamKey = Secret<String>;

/// Any other secret text from the configuration: a signing secret, a database URL (which may
/// carry a password).
pub type SecretText = Secret<String>;
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
