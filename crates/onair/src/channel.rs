//! Channel names and publish/play names as they arrive in RTMP commands and URLs.

/// Longest channel name we accept.
pub const MAX_NAME_LEN: usize = 64;

/// A channel name is 1–64 characters of `[A-Za-z0-9_-]`, so it is safe in a URL path, a file
/// name and a log line.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A channel slug, as the API accepts it: 2–64 characters of `[a-z0-9_-]` starting with a
/// letter or digit. Lower case only, so `Alice` and `alice` cannot be two channels; every slug
/// is also a valid channel name.
pub fn is_valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    (2..=MAX_NAME_LEN).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Splits an RTMP stream name into the name and its query string: OBS and ffmpeg users
/// append `?param=…` to keys and play names.
pub fn split_query(name: &str) -> (&str, Option<&str>) {
    match name.split_once('?') {
        Some((n, q)) => (n, Some(q)),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["ab", "alice", "cam-1", "0day", "a_b", &"x".repeat(64)] {
            assert!(is_valid_slug(good), "{good}");
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "Alice",
            "-x",
            "_x",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_name("demo"));
        assert!(is_valid_name("a-b_C9"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"x".repeat(65)));
        assert_eq!(split_query("key?x=1"), ("key", Some("x=1")));
        assert_eq!(split_query("key"), ("key", None));
    }
}
