//! Password hashing with Argon2id (RFC 9106), stored as PHC strings.

use std::fmt;

use argon2::password_hash::{self, Output, ParamsString, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// Largest memory cost a hash may ask for, in KiB (1 GiB). A stored hash asking for more is
/// treated as corrupt rather than allowed to allocate without bound.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;

/// The cost of new hashes: Argon2id's memory in KiB (`m`) and passes over it (`t`), one lane.
/// The default is RFC 9106's and OWASP's second recommendation, 19 MiB and 2 passes; OWASP
/// lists 12 MiB × 3, 9 MiB × 4 and 7 MiB × 5 as equally strong for less memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory per hash in KiB (Argon2 `m`); at least 8.
    pub memory_kib: u32,
    /// Passes over that memory (Argon2 `t`); at least 1.
    pub passes: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
        }
    }
}

impl HashCost {
    fn params(self) -> Result<Params, password_hash::Error> {
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(password_hash::Error::ParamValueInvalid(
                password_hash::errors::InvalidValue::TooLong,
            ));
        }
        Ok(Params::new(self.memory_kib, self.passes, 1, None)?)
    }
}

/// Argon2's working memory, kept between hashes. One hash at the default cost fills 19 MiB;
/// allocating that per hash leaves each thread's allocator arena holding its own copy once
/// freed, so a process that hashes on many threads grows by 19 MiB per thread. A `Hasher`
/// per hashing thread makes the memory exactly one block per thread, reused.
///
/// Argon2's first pass writes every block before any block is read (RFC 9106 §3.4), so what
/// an earlier hash left in the memory never affects the next one.
#[derive(Default)]
pub struct Hasher {
    blocks: Vec<Block>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl Hasher {
    /// A hasher with no memory yet; the first hash allocates it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The working memory held now, in bytes: the largest cost hashed or checked so far.
    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// Hashes `password` with Argon2id at `cost`, salted with 16 bytes the caller drew from a
    /// cryptographic RNG.
    pub fn hash(
        &mut self,
        password: &str,
        salt: [u8; 16],
        cost: HashCost,
    ) -> Result<PasswordHash, PasswordError> {
        let hash_error = |source| PasswordError::Hash {
            len: password.len(),
            source,
        };
        let params = cost.params().map_err(hash_error)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2
            .hash_password_into_with_memory(
                password.as_bytes(),
                &salt,
                &mut out,
                self.memory(&params),
            )
            .map_err(|e| hash_error(e.into()))?;
        let salt = SaltString::encode_b64(&salt).map_err(hash_error)?;
        let phc = password_hash::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(hash_error)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(hash_error)?),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    /// Whether `password` matches the stored PHC string `phc`, compared in constant time. The
    /// algorithm, version and cost are read from `phc`, so hashes made under another cost
    /// still verify. A `phc` that does not parse, names another algorithm or asks for more
    /// than [`MAX_MEMORY_KIB`] is an error rather than `false`: it means the stored data is
    /// wrong, not the password.
    pub fn verify(&mut self, password: &str, phc: &str) -> Result<bool, PasswordError> {
        let parsed = password_hash::PasswordHash::new(phc).map_err(PasswordError::BadHash)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(PasswordError::BadHash)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| PasswordError::BadHash(e.into()))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(PasswordError::BadHash)?;
        if params.m_cost() > MAX_MEMORY_KIB {
            return Err(PasswordError::BadHash(
                password_hash::Error::ParamValueInvalid(
                    password_hash::errors::InvalidValue::TooLong,
                ),
            ));
        }
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(PasswordError::BadHash(password_hash::Error::PhcStringField));
        };
        let mut salt_bytes = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_bytes)
            .map_err(PasswordError::BadHash)?;
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(password.as_bytes(), salt, out, self.memory(&params))
            .map_err(|e| PasswordError::BadHash(e.into()))?;
        // `Output`'s equality is constant-time.
        let computed = Output::new(out).map_err(PasswordError::BadHash)?;
        Ok(computed == expected)
    }

    fn memory(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        &mut self.blocks[..needed]
    }
}

/// Whether a stored hash was made at a cost other than `cost` (or is not Argon2id): a login
/// that just proved the password can store a fresh hash at the configured cost. A `phc` that
/// does not parse says `false`: [`Hasher::verify`] reports it.
pub fn needs_rehash(phc: &str, cost: HashCost) -> bool {
    let Ok(parsed) = password_hash::PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    parsed.algorithm != Algorithm::Argon2id.ident()
        || params.m_cost() != cost.memory_kib
        || params.t_cost() != cost.passes
        || params.p_cost() != 1
}

/// Hashes `password` with Argon2id at `cost` with fresh working memory; see [`Hasher::hash`].
pub fn hash_password(
    password: &str,
    salt: [u8; 16],
    cost: HashCost,
) -> Result<PasswordHash, PasswordError> {
    Hasher::new().hash(password, salt, cost)
}

/// Checks `password` against `phc` with fresh working memory; see [`Hasher::verify`].
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    Hasher::new().verify(password, phc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [0x42; 16];

    /// A cheap cost for the tests that do not check the default.
    const CHEAP: HashCost = HashCost {
        memory_kib: 64,
        passes: 1,
    };

    fn hash_password(password: &str, salt: [u8; 16]) -> Result<PasswordHash, PasswordError> {
        super::hash_password(password, salt, CHEAP)
    }

    #[test]
    fn round_trip_at_the_default_cost_matches_the_argon2_crate() {
        use argon2::password_hash::PasswordHasher as _;
        let hash = super::hash_password("correct horse battery staple", SALT, HashCost::default())
            .unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        let salt = SaltString::encode_b64(&SALT).unwrap();
        let reference = Argon2::default()
            .hash_password(b"correct horse battery staple", &salt)
            .unwrap()
            .to_string();
        assert_eq!(hash.as_str(), reference);
        assert!(verify_password("correct horse battery staple", hash.as_str()).unwrap());
    }

    #[test]
    fn one_hasher_reused_across_costs_gives_what_fresh_memory_gives() {
        let mut hasher = Hasher::new();
        let big = HashCost {
            memory_kib: 256,
            passes: 2,
        };
        let first = hasher.hash("one password", SALT, big).unwrap();
        assert_eq!(hasher.memory_bytes(), 256 * 1024);
        // Smaller after bigger: the memory is reused, not shrunk, and the old content is
        // overwritten before it is read.
        let second = hasher.hash("another", [1; 16], CHEAP).unwrap();
        assert_eq!(
            second,
            super::hash_password("another", [1; 16], CHEAP).unwrap()
        );
        assert_eq!(
            first,
            super::hash_password("one password", SALT, big).unwrap()
        );
        assert!(hasher.verify("one password", first.as_str()).unwrap());
        assert!(!hasher.verify("one passworD", first.as_str()).unwrap());
        assert!(hasher.verify("another", second.as_str()).unwrap());
        assert_eq!(hasher.memory_bytes(), 256 * 1024);
    }

    #[test]
    fn hashes_of_other_argon2_variants_and_costs_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::encode_b64(&SALT).unwrap();
        for (algorithm, m, t) in [
            (Algorithm::Argon2id, 128, 3),
            (Algorithm::Argon2i, 64, 2),
            (Algorithm::Argon2d, 64, 1),
        ] {
            let params = Params::new(m, t, 2, None).unwrap();
            let phc = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            assert!(verify_password("pw", &phc).unwrap(), "{phc}");
            assert!(!verify_password("pW", &phc).unwrap(), "{phc}");
            assert!(needs_rehash(&phc, CHEAP), "{phc}");
        }
    }

    #[test]
    fn a_hash_is_rehashed_only_when_its_cost_differs() {
        let hash = hash_password("pw", SALT).unwrap();
        assert!(!needs_rehash(hash.as_str(), CHEAP));
        assert!(needs_rehash(hash.as_str(), HashCost::default()));
        assert!(!needs_rehash("not a hash", CHEAP));
    }

    #[test]
    fn absurd_costs_are_refused() {
        let too_big = HashCost {
            memory_kib: MAX_MEMORY_KIB + 1,
            passes: 1,
        };
        assert!(super::hash_password("pw", SALT, too_big).is_err());
        let phc = format!(
            "$argon2id$v=19$m={},t=1,p=1$QkJCQkJCQkJCQkJCQkJCQg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            MAX_MEMORY_KIB + 1
        );
        assert!(matches!(
            verify_password("pw", &phc),
            Err(PasswordError::BadHash(_))
        ));
        let zero_passes = HashCost {
            memory_kib: 64,
            passes: 0,
        };
        assert!(super::hash_password("pw", SALT, zero_passes).is_err());
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
