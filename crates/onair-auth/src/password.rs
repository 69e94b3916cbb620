//! Password hashing with Argon2id (RFC 9106), stored as PHC strings.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _, SaltString};

/// A password hash in PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), as stored in
/// the `users` table. `Debug` prints `PasswordHash([redacted])`: a leaked hash invites offline
/// guessing.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string, to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The PHC string, to store.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Argon2 refused the input, e.g. a password longer than it accepts.
    #[error("hashing a {len}-byte password failed")]
    Hash {
        /// Length of the password in bytes (never the password).
        len: usize,
        /// What argon2 reported.
        #[source]
        source: password_hash::Error,
    },
    /// The stored hash is not an Argon2 PHC string this crate can check.
    #[error("stored password hash is not a valid Argon2 PHC string")]
    BadHash(#[source] password_hash::Error),
}

/// Hashes `password` with Argon2id and the crate's default cost (RFC 9106 / OWASP: 19 MiB,
/// 2 passes, 1 lane), salted with 16 bytes the caller drew from a cryptographic RNG.
pub fn hash_password(password: &str, salt: [u8; 16]) -> Result<PasswordHash, PasswordError> {
    let hash_error = |source| PasswordError::Hash {
        len: password.len(),
        source,
    };
    let salt = SaltString::encode_b64(&salt).map_err(hash_error)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| PasswordHash(hash.to_string()))
        .map_err(hash_error)
}

/// Whether `password` matches the stored PHC string `phc`, compared in constant time by
/// argon2. The cost parameters are read from `phc`, so hashes made under an older cost still
/// verify. A `phc` that does not parse, or names another algorithm, is an error rather than
/// `false`: it means the stored data is wrong, not the password.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = password_hash::PasswordHash::new(phc).map_err(PasswordError::BadHash)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(other) => Err(PasswordError::BadHash(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [0x42; 16];

    #[test]
    fn round_trip() {
        let hash = hash_password("correct horse battery staple", SALT).unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(verify_password("correct horse battery staple", hash.as_str()).unwrap());
    }

    #[test]
    fn wrong_password_is_false() {
        let hash = hash_password("correct horse battery staple", SALT).unwrap();
        for wrong in [
            "",
            "correct horse battery stapl",
            "Correct horse battery staple",
        ] {
            assert!(!verify_password(wrong, hash.as_str()).unwrap(), "{wrong:?}");
        }
    }

    #[test]
    fn salt_changes_the_hash() {
        let one = hash_password("pw", SALT).unwrap();
        let two = hash_password("pw", [0x43; 16]).unwrap();
        assert_ne!(one, two);
        assert_eq!(one, hash_password("pw", SALT).unwrap());
    }

    #[test]
    fn empty_and_unicode_passwords() {
        for password in ["", "пароль 🔑"] {
            let hash = hash_password(password, SALT).unwrap();
            assert!(verify_password(password, hash.as_str()).unwrap());
        }
    }

    #[test]
    fn bad_phc_string_is_an_error() {
        let hash = hash_password("pw", SALT).unwrap().into_string();
        let truncated = &hash[..hash.len() - 5];
        let cases = [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            truncated,
            // A valid PHC string for another algorithm.
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdHNhbHRzYWx0c2FsdA",
        ];
        for phc in cases {
            let result = verify_password("pw", phc);
            assert!(
                matches!(result, Err(PasswordError::BadHash(_))),
                "{phc:?}: {result:?}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let hash = hash_password("pw", SALT).unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash([redacted])");
    }
}
