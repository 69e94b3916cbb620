//! `onair user create|list|role|password|ban|unban`: accounts, for an operator at the
//! server's shell.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use onair::config::Config;
use onair::platform::{Platform, PlatformError};
use onair_store::{Page, Role, StoreError, User};

use super::{audit, format_time, print_table, with_platform};

// The REST API's rules, so an account made here could have been made there.
use onair::api::validate::{PASSWORD_LEN, USERNAME_LEN};

/// `onair user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a random password is generated and printed
    /// once, alone on stdout.
    ///
    /// Example: onair user create alice --role streamer
    Create(CreateArgs),
    /// List accounts.
    List {
        /// Only names containing this (any case).
        #[arg(long)]
        search: Option<String>,
    },
    /// Change an account's role.
    Role {
        /// The login name.
        name: String,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Give an account a new password and end its logins. Without --password-stdin a random
    /// password is generated and printed once, alone on stdout: how to get into an admin
    /// account whose password is lost (such as one a failed first start created).
    ///
    /// Example: onair user password admin
    Password {
        /// The login name.
        name: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Ban an account: it can no longer log in or publish, and its live streams end within a
    /// second on every running server.
    Ban {
        /// The login name.
        name: String,
    },
    /// Lift a ban.
    Unban {
        /// The login name.
        name: String,
    },
}

/// `onair user create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The login name: 3-32 of A-Z a-z 0-9 _ . -
    name: String,
    /// Make the account an admin (same as --role admin).
    #[arg(long, conflicts_with = "role")]
    admin: bool,
    /// What the account may do.
    #[arg(long, value_enum, default_value_t = RoleArg::Streamer)]
    role: RoleArg,
    /// Read the password from the first line of stdin instead of generating one.
    #[arg(long)]
    password_stdin: bool,
}

/// A role as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Manages every user, channel and key.
    Admin,
    /// Owns channels and their stream keys.
    Streamer,
    /// Watches and chats.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Streamer => Role::Streamer,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// Runs one `onair user` command against the configured database.
pub async fn run(command: UserCommand, config: Config) -> anyhow::Result<()> {
    // The password is read before the database is opened, so a pipe that closes early fails
    // before anything is created.
    let password = match &command {
        UserCommand::Create(CreateArgs {
            password_stdin: true,
            ..
        })
        | UserCommand::Password {
            password_stdin: true,
            ..
        } => Some(read_password_line()?),
        _ => None,
    };
    with_platform(&config, |platform| async move {
        match command {
            UserCommand::Create(args) => create(&platform, args, password).await,
            UserCommand::List { search } => list(&platform, search.as_deref()).await,
            UserCommand::Role { name, role } => set_role(&platform, &name, role.into()).await,
            UserCommand::Password { name, .. } => set_password(&platform, &name, password).await,
            UserCommand::Ban { name } => set_banned(&platform, &name, true).await,
            UserCommand::Unban { name } => set_banned(&platform, &name, false).await,
        }
    })
    .await
}

async fn create(
    platform: &Platform,
    args: CreateArgs,
    password: Option<String>,
) -> anyhow::Result<()> {
    let name = args.name;
    let valid = USERNAME_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        bail!(
            "invalid user name {name:?}: use 3 to 32 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
        );
    }
    let role = if args.admin {
        Role::Admin
    } else {
        args.role.into()
    };
    let generated = password.is_none();
    let password = password.unwrap_or_else(onair::platform::random_password);
    let user = match platform.create_user(&name, &password, role).await {
        Ok(user) => user,
        Err(PlatformError::Store(StoreError::Conflict { .. })) => {
            bail!("user name {name:?} is taken")
        }
        Err(e) => return Err(e).context("creating the account"),
    };
    eprintln!(
        "created {role} account {:?} (id {})",
        user.username, user.id
    );
    if generated {
        eprintln!("its password, shown only now:");
        println!("{password}");
    }
    audit(
        platform,
        "user.create",
        format!("user:{}", user.id),
        serde_json::json!({ "username": user.username, "role": user.role, "via": "cli" }),
    )
    .await;
    Ok(())
}

async fn list(platform: &Platform, search: Option<&str>) -> anyhow::Result<()> {
    const PAGE: u32 = 100;
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let (users, total) = platform
            .store()
            .list_users(search, Page::new(offset, PAGE))
            .await
            .context("listing accounts")?;
        let got = users.len() as u32;
        rows.extend(users.into_iter().map(|u| {
            vec![
                u.id.to_string(),
                u.username,
                u.role.to_string(),
                if u.banned { "yes" } else { "no" }.to_owned(),
                format_time(Some(u.created_at)),
            ]
        }));
        offset += got;
        if got == 0 || u64::from(offset) >= total {
            break;
        }
    }
    print_table(&["ID", "NAME", "ROLE", "BANNED", "CREATED"], &rows);
    Ok(())
}

async fn set_role(platform: &Platform, name: &str, role: Role) -> anyhow::Result<()> {
    let user = find(platform, name).await?;
    if user.role == role {
        eprintln!("{:?} is already {role}", user.username);
        return Ok(());
    }
    let updated = platform
        .store()
        .set_user_role(user.id, role)
        .await
        .context("changing the role")?;
    eprintln!("{:?} is now {role} (was {})", updated.username, user.role);
    audit(
        platform,
        "user.role",
        format!("user:{}", user.id),
        serde_json::json!({ "from": user.role, "to": role, "via": "cli" }),
    )
    .await;
    Ok(())
}

async fn set_password(
    platform: &Platform,
    name: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let user = find(platform, name).await?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(onair::platform::random_password);
    platform
        .set_password(&user, &password)
        .await
        .context("setting the password")?;
    eprintln!(
        "{:?} has a new password; its logins are ended",
        user.username
    );
    if generated {
        eprintln!("the password, shown only now:");
        println!("{password}");
    }
    audit(
        platform,
        "user.password",
        format!("user:{}", user.id),
        serde_json::json!({ "via": "cli" }),
    )
    .await;
    Ok(())
}

async fn set_banned(platform: &Platform, name: &str, banned: bool) -> anyhow::Result<()> {
    let user = find(platform, name).await?;
    if user.banned == banned {
        let state = if banned { "banned" } else { "not banned" };
        eprintln!("{:?} is already {state}", user.username);
        return Ok(());
    }
    platform
        .store()
        .set_user_banned(user.id, banned)
        .await
        .context("changing the ban")?;
    if banned {
        // A ban ends the account's logins now, as the admin API does; its live streams end
        // at the servers' next key check.
        platform
            .store()
            .revoke_user_auth_sessions(user.id, chrono::Utc::now())
            .await
            .context("ending the account's logins")?;
        eprintln!(
            "banned {:?}: its logins are ended and its live streams end within a second",
            user.username
        );
    } else {
        eprintln!("unbanned {:?}", user.username);
    }
    let action = if banned { "user.ban" } else { "user.unban" };
    audit(
        platform,
        action,
        format!("user:{}", user.id),
        serde_json::json!({ "via": "cli" }),
    )
    .await;
    Ok(())
}

/// The account named `name` (any case), or an error that says there is none.
pub async fn find(platform: &Platform, name: &str) -> anyhow::Result<User> {
    platform
        .store()
        .user_by_name(name)
        .await
        .context("looking up the account")?
        .with_context(|| format!("no user named {name:?}"))
}

/// The first line of stdin without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if !PASSWORD_LEN.contains(&password.chars().count()) {
        bail!(
            "the password on stdin must be {} to {} characters on one line",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        );
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (
            onair::platform::random_password(),
            onair::platform::random_password(),
        );
        assert_eq!(a.len(), 20);
        assert!(PASSWORD_LEN.contains(&a.len()));
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() && !b"0O1lI".contains(&c))
        );
    }
}
