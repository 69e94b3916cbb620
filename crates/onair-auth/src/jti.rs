//! [`Jti`]: the token id the store revokes by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A token id (`jti`, RFC 7519 §4.1.7): 128 random bits written as 32 lowercase hex digits.
///
/// A `jti` alone cannot publish, so it is not a secret: it names a key in the store, in the
/// admin API and on the command line (`onair key revoke JTI`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jti(String);

/// Why a string is not a [`Jti`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JtiError {
    /// Not exactly 32 lowercase hex digits.
    #[error("jti {text:?} is not 32 lowercase hex digits")]
    NotHex {
        /// The offending text.
        text: String,
    },
}

impl Jti {
    /// Number of characters in a jti.
    pub const LEN: usize = 32;

    /// A jti from 16 bytes the caller drew from a cryptographic RNG.
    pub fn from_random(random: [u8; 16]) -> Self {
        Self(hex::encode(random))
    }

    /// The jti as text, as stored in the `stream_keys` table.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Jti {
    type Err = JtiError;

    fn from_str(text: &str) -> Result<Self, JtiError> {
        let valid =
            text.len() == Self::LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(JtiError::NotHex {
                text: text.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for Jti {
    type Error = JtiError;

    fn try_from(text: String) -> Result<Self, JtiError> {
        text.parse()
    }
}

impl From<Jti> for String {
    fn from(jti: Jti) -> String {
        jti.0
    }
}

impl fmt::Display for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jti({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_random_is_hex_and_parses_back() {
        let jti = Jti::from_random([
            0x00, 0x01, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ]);
        assert_eq!(jti.as_str(), "0001feff000000000000000000000010");
        assert_eq!(jti.as_str().parse::<Jti>().unwrap(), jti);
    }

    #[test]
    fn parse_refuses_other_text() {
        for text in [
            "",
            "0001feff00000000000000000000001",
            "0001feff0000000000000000000000100",
            "0001FEFF000000000000000000000010",
            "0001feff00000000000000000000001g",
            "0001feff-0000-0000-0000-00000010",
        ] {
            assert!(
                matches!(text.parse::<Jti>(), Err(JtiError::NotHex { .. })),
                "{text}"
            );
        }
    }
}
