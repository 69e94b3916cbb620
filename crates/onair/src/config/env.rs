//! Which `ONAIR_*` environment variables are configuration, and what the others are.
//!
//! A shell, a container or a user's scripts set `ONAIR_*` variables of their own
//! (`ONAIR_BIN`, `ONAIR_VERSION`, the test suite's `ONAIR_TEST_POSTGRES`), so only a name that
//! can only be meant for us is refused: `ONAIR_<SECTION>_<KEY>` with a known section and a key
//! that section does not have is a typo of a real key, and silently ignoring it would run the
//! server with a setting the operator believes is changed. Any other name that is not a key is
//! ignored, with a warning at start.

use std::fmt;

use super::options::{OPTIONS, Opt, sections};

/// Variables with the `ONAIR_` prefix that are read elsewhere, never config keys.
const NOT_CONFIG: [&str; 2] = ["ONAIR_CONFIG", "ONAIR_LOG"];

/// What one environment variable is to the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EnvName {
    /// Not ours: no `ONAIR_` prefix, or a variable read elsewhere (`ONAIR_LOG`, `ONAIR_CONFIG`).
    Other,
    /// Sets the option `opt`.
    Key(&'static Opt),
    /// `ONAIR_<SECTION>_<KEY>` with a known section and a key it does not have: refused.
    Unknown {
        /// `section.key` as the variable spells it.
        dotted: String,
        /// The section's key nearest to it.
        closest: &'static Opt,
    },
    /// An `ONAIR_` name that is no config key and names no section: ignored with a warning.
    Ignored(IgnoredVar),
}

/// An `ONAIR_*` variable that is not a config key, ignored; the server logs it once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredVar {
    /// The variable.
    pub name: String,
    /// A config variable the name is one or two letters away from, if any: probably meant.
    pub closest: Option<String>,
}

impl fmt::Display for IgnoredVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a config variable; ignored", self.name)?;
        if let Some(closest) = &self.closest {
            write!(f, " (did you mean {closest}?)")?;
        }
        Ok(())
    }
}

/// The variable that sets `opt`: `ONAIR_RTMP_CHUNK_SIZE` for `rtmp.chunk_size`.
pub fn var_name(opt: &Opt) -> String {
    format!("ONAIR_{}", opt.key.replace('.', "_").to_ascii_uppercase())
}

/// Sorts `var` into one of the [`EnvName`] cases.
pub(super) fn classify(var: &str) -> EnvName {
    let Some(rest) = var.strip_prefix("ONAIR_") else {
        return EnvName::Other;
    };
    if NOT_CONFIG.contains(&var) {
        return EnvName::Other;
    }
    let rest = rest.to_ascii_lowercase();
    if let Some(opt) = OPTIONS
        .iter()
        .find(|o| o.section().is_none() && o.key == rest)
    {
        return EnvName::Key(opt);
    }
    // The longest section that prefixes the name, so a section whose name contains `_` still
    // wins over a shorter one it starts with.
    let section = sections()
        .into_iter()
        .filter(|s| {
            rest.strip_prefix(s)
                .is_some_and(|after| after.starts_with('_'))
        })
        .max_by_key(|s| s.len());
    let Some(section) = section else {
        return EnvName::Ignored(IgnoredVar {
            name: var.to_owned(),
            closest: nearest_var(var),
        });
    };
    let key = &rest[section.len() + 1..];
    let in_section = || OPTIONS.iter().filter(|o| o.section() == Some(section));
    if let Some(opt) = in_section().find(|o| o.name() == key) {
        return EnvName::Key(opt);
    }
    let closest = in_section()
        .min_by_key(|o| strsim::levenshtein(o.name(), key))
        // Every section comes from a row of OPTIONS, so it has at least that row.
        .expect("a section has at least one option");
    EnvName::Unknown {
        dotted: format!("{section}.{key}"),
        closest,
    }
}

/// The config variable within two edits of `var`, if there is one.
fn nearest_var(var: &str) -> Option<String> {
    OPTIONS
        .iter()
        .map(var_name)
        .map(|name| (strsim::levenshtein(&name, var), name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(var: &str) -> Option<&'static str> {
        match classify(var) {
            EnvName::Key(opt) => Some(opt.key),
            _ => None,
        }
    }

    #[test]
    fn every_option_has_a_variable_that_sets_it() {
        for opt in OPTIONS {
            assert_eq!(key_of(&var_name(opt)), Some(opt.key), "{}", var_name(opt));
        }
        assert_eq!(key_of("ONAIR_rtmp_chunk_size"), Some("rtmp.chunk_size"));
    }

    #[test]
    fn a_known_section_with_an_unknown_key_is_refused_naming_the_closest_key() {
        match classify("ONAIR_RTMP_CHUNK_SISE") {
            EnvName::Unknown { dotted, closest } => {
                assert_eq!(dotted, "rtmp.chunk_sise");
                assert_eq!(closest.key, "rtmp.chunk_size");
            }
            other => panic!("{other:?}"),
        }
        match classify("ONAIR_HTTP_MAX_CONECTIONS") {
            EnvName::Unknown { closest, .. } => assert_eq!(closest.key, "http.max_connections"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_onair_names_are_ignored_and_foreign_ones_are_not_ours() {
        for var in [
            "ONAIR_BIN",
            "ONAIR_TEST_POSTGRES",
            "ONAIR_VERSION",
            "ONAIR_RTMP",
            "ONAIR_",
        ] {
            match classify(var) {
                EnvName::Ignored(ignored) => {
                    assert_eq!(ignored.name, var);
                    assert!(ignored.to_string().contains("ignored"), "{ignored}");
                }
                other => panic!("{var}: {other:?}"),
            }
        }
        for var in [
            "PATH",
            "ONAIR_LOG",
            "ONAIR_CONFIG",
            "DATABASE_URL",
            "XONAIR_RTMP_X",
        ] {
            assert_eq!(classify(var), EnvName::Other, "{var}");
        }
    }

    #[test]
    fn an_ignored_name_near_a_key_says_which_one_was_probably_meant() {
        match classify("ONAIR_SHUTDOWN_GRACEE") {
            EnvName::Ignored(ignored) => {
                assert_eq!(ignored.closest.as_deref(), Some("ONAIR_SHUTDOWN_GRACE"));
                assert!(
                    ignored
                        .to_string()
                        .contains("did you mean ONAIR_SHUTDOWN_GRACE?"),
                    "{ignored}"
                );
            }
            other => panic!("{other:?}"),
        }
        match classify("ONAIR_BIN") {
            EnvName::Ignored(ignored) => assert_eq!(ignored.closest, None),
            other => panic!("{other:?}"),
        }
    }
}
