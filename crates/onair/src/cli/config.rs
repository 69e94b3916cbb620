//! `onair config` and `onair config check`: the configuration as it would be in effect.
//!
//! Both print it on stdout as a commented TOML file with every secret masked, so the output
//! can be kept or diffed; warnings and the verdict go to stderr. A configuration that does not
//! load never gets here: `main` prints its one-line error and exits 1.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use onair::config::Loaded;

/// `onair config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it as it would be in effect, secrets masked.
    ///
    /// Reads FILE (else --config or ONAIR_CONFIG), then the ONAIR_* environment and
    /// DATABASE_URL. When something is wrong: exit status 1 and one line naming the file, line,
    /// column and key, or the variable.
    Check {
        /// The file to check instead of --config.
        file: Option<PathBuf>,
    },
}

/// Prints the effective configuration, then a warning per ignored `ONAIR_*` variable.
pub fn print(loaded: &Loaded) {
    print!("{}", loaded.config.redacted_toml());
    for ignored in &loaded.ignored {
        eprintln!("warning: {ignored}");
    }
}

/// [`print`], then what was checked: the file and the variables that set an option.
pub fn check(loaded: &Loaded, path: Option<&Path>) {
    print(loaded);
    let file = path.map_or_else(|| "no file".to_owned(), |p| p.display().to_string());
    let env = match loaded.overrides.as_slice() {
        [] => String::new(),
        vars => format!(" with {}", vars.join(", ")),
    };
    eprintln!("configuration valid: {file}{env}");
}
