//! The `onair` command: the server (`onair serve`, the default) and its tools.

mod cli;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use onair::config::{Config, LogFormat};
use onair::platform::Platform;
use onair::server::{Listeners, RunningServer};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// OnAir: a self-hosted live-streaming server.
///
/// Publish with OBS or ffmpeg to rtmp://HOST:1935/live/STREAM_KEY; watch at
/// rtmp://HOST:1935/live/CHANNEL, http://HOST:8080/live/CHANNEL.flv or
/// ws://HOST:8080/live/CHANNEL.flv.
#[derive(Debug, Parser)]
#[command(name = "onair", version, after_long_help = onair::config::reference())]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as ONAIR_<SECTION>_<KEY>.
    #[arg(long, short, global = true, env = "ONAIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration (secrets redacted), each key with what it does and
    /// its default, and exit.
    #[command(args_conflicts_with_subcommands = true)]
    Config {
        /// Print the commented example file instead: every option at its default
        /// (`onair config --example > deploy/onair.toml` regenerates the shipped one).
        #[arg(long)]
        example: bool,
        #[command(subcommand)]
        command: Option<cli::config::ConfigCommand>,
    },
    /// Publish an FLV file to an RTMP server in real time, like an encoder.
    ///
    /// Example: onair publish demo.flv rtmp://localhost/live/STREAM_KEY --loop
    Publish(cli::publish::PublishArgs),
    /// Play a stream over RTMP and write it as FLV to a file or stdout.
    ///
    /// Example: onair play rtmp://localhost/live/demo -o demo.flv --duration 10s
    Play(cli::play::PlayArgs),
    /// Exit 0 when the server answers GET /healthz with 200 (for container health checks).
    ///
    /// Example: onair healthcheck http://127.0.0.1:8080/healthz
    Healthcheck(cli::healthcheck::HealthcheckArgs),
    /// Create or update the database schema (the server also does this at start-up) and exit.
    Migrate,
    /// Manage accounts: create, list, role, ban, unban.
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Manage channels: create, list.
    #[command(subcommand)]
    Channel(cli::channel::ChannelCommand),
    /// Manage stream keys: issue, revoke, list.
    #[command(subcommand)]
    Key(cli::key::KeyCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The clients need no server configuration: a broken onair.toml must not stop them.
    let load_from = |path: Option<&std::path::Path>| {
        Config::load_reporting(path, std::env::vars()).context("loading the configuration")
    };
    let load = || load_from(cli.config.as_deref());
    // Only serving opens the certificate files (and `config check` vouches for them): the
    // other commands must work for an operator who may not read the private key.
    let load_settings = || {
        Config::load_without_files(cli.config.as_deref(), std::env::vars())
            .context("loading the configuration")
    };
    match cli.command.unwrap_or(Command::Serve) {
        // Like the operator commands, a server that cannot start says why in one line, not
        // with anyhow's report (and a backtrace under RUST_BACKTRACE=1).
        Command::Serve => exit_with(load().and_then(|loaded| {
            let set_filter = init_logging(&loaded.config);
            warn_ignored(&loaded.ignored);
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if loaded.config.worker_threads > 0 {
                runtime.worker_threads(loaded.config.worker_threads);
            }
            let runtime = runtime
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(serve(loaded.config, cli.config.as_deref(), &set_filter))
        })),
        Command::Config { example: true, .. } => {
            print!("{}", onair::config::example_toml());
            Ok(())
        }
        Command::Config {
            command: Some(cli::config::ConfigCommand::Check { file }),
            ..
        } => {
            let path = file.or_else(|| cli.config.clone());
            exit_with(
                load_from(path.as_deref())
                    .map(|loaded| cli::config::check(&loaded, path.as_deref())),
            )
        }
        Command::Config { command: None, .. } => {
            exit_with(load_settings().map(|l| cli::config::print(&l)))
        }
        Command::Publish(args) => {
            init_client_logging();
            exit_with(client_runtime()?.block_on(cli::publish::run(args)))
        }
        Command::Play(args) => {
            init_client_logging();
            exit_with(client_runtime()?.block_on(cli::play::run(args)))
        }
        Command::Healthcheck(args) => {
            // With a URL no configuration is needed, and a broken file must not fail the check.
            let config = match &args.url {
                Some(_) => Ok(Config::default()),
                None => load_settings().map(|loaded| loaded.config),
            };
            exit_with(config.and_then(|config| {
                client_runtime()?.block_on(cli::healthcheck::run(args, &config))
            }))
        }
        Command::Migrate => operator(load_settings(), |config| async move {
            cli::migrate::run(&config.storage).await
        }),
        Command::User(command) => {
            operator(load_settings(), |config| cli::user::run(command, config))
        }
        Command::Channel(command) => {
            operator(load_settings(), |config| cli::channel::run(command, config))
        }
        Command::Key(command) => operator(load_settings(), |config| cli::key::run(command, config)),
    }
}

/// Runs an operator command on the loaded configuration and exits as [`exit_with`] does.
fn operator<F, Fut>(loaded: anyhow::Result<onair::config::Loaded>, command: F) -> !
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_client_logging();
    let result = loaded.and_then(|loaded| {
        warn_ignored(&loaded.ignored);
        let runtime = client_runtime().context("starting the runtime")?;
        runtime.block_on(command(loaded.config))
    });
    exit_with(result)
}

/// Logs, once, each `ONAIR_*` variable that was no config key and so changed nothing.
fn warn_ignored(ignored: &[onair::config::IgnoredVar]) {
    for var in ignored {
        tracing::warn!(variable = %var.name, "{var}");
    }
}

/// Ends a command: an error becomes one line on stderr (the chain of causes, without the
/// backtrace `RUST_BACKTRACE=1` would add to `main`'s report) and exit status 1.
fn exit_with(result: anyhow::Result<()>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::exit(1)
        }
    }
}

/// The chain of causes joined by `: `, leaving out a cause whose text the one before it
/// already ends with (sqlx prints its I/O error and then has it as its source, which would
/// say "Connection refused" twice).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if previous.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

/// One connection needs one thread.
fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The clients print their progress themselves; logs are for debugging (`ONAIR_LOG=debug`)
/// and, like everything else they print, go to stderr: stdout may be the FLV stream.
fn init_client_logging() {
    let filter = std::env::var("ONAIR_LOG").unwrap_or_else(|_| "warn".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(config: Config, path: Option<&Path>, set_filter: &SetFilter) -> anyhow::Result<()> {
    info!(config = %config.redacted_json(), "effective configuration");
    if config.dev.open {
        tracing::warn!("dev.open is on: anyone can publish to any channel name");
    }
    let platform = Platform::open(&config.storage, &config.auth)
        .await
        .context("opening the database")?;
    info!(backend = ?platform.store().backend(), "database ready");
    // Bound before the first start creates anything: a start that cannot listen must not
    // create an admin whose password it never shows.
    let listeners = match Listeners::bind(&config) {
        Ok(listeners) => listeners,
        Err(e) => {
            let first_start =
                config.auth.bootstrap && platform.store().count_users().await.is_ok_and(|n| n == 0);
            let hint = if first_start {
                "; nothing was created: the first start that can listen creates the admin and prints its password"
            } else {
                ""
            };
            bail!("{e}{hint}");
        }
    };
    let bootstrap = if config.auth.bootstrap {
        match platform.bootstrap().await {
            Ok(created) => created,
            Err(e) => {
                let admin = platform.store().user_by_name("admin").await;
                let hint = if matches!(admin, Ok(Some(_))) {
                    "; the admin account exists but its password was never shown: set one with \
                     `onair user password admin`, then create what is missing with \
                     `onair channel create demo --owner admin` and `onair key issue demo`"
                } else {
                    "; nothing was created: the next start tries again"
                };
                bail!(
                    "first-start set-up failed: {:#}{hint}",
                    anyhow::Error::from(e)
                );
            }
        }
    } else {
        None
    };
    let store = platform.store().clone();
    let server = RunningServer::serve(config, platform, listeners);
    if let Some(b) = bootstrap {
        print_bootstrap(&b, &server);
    }
    close_leftover_sessions(&store).await;
    server
        .run_until_signal(|server| reload(server, path, set_filter))
        .await;
    store.close().await;
    Ok(())
}

/// Live sessions still open at start-up were cut off by a crash or a kill: nothing is live
/// before this server accepts a publish. They are closed at the time they were found.
async fn close_leftover_sessions(store: &onair_store::Store) {
    match store.open_live_sessions().await {
        Ok(open) => {
            for s in open {
                if let Err(e) = store
                    .end_live_session(s.id, chrono::Utc::now(), s.bytes_in, s.peak_viewers)
                    .await
                {
                    tracing::warn!(error = %e, session = s.id, "cannot close a leftover live session");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for leftover live sessions"),
    }
}

/// Prints what the first start created, once, on stdout (not in the logs: the password and
/// the key must not end up in a log collector).
fn print_bootstrap(b: &onair::platform::Bootstrap, server: &RunningServer) {
    // The configured public URL, else one made from where RTMP is bound (port 0 in tests).
    let rtmp = onair::config::RtmpConfig {
        listen: server.rtmp_addr,
        ..server.state().config.rtmp.clone()
    }
    .publish_url();
    let http = server.http_addr.port();
    let (user, password) = (&b.username, b.password.expose());
    let (key, slug) = (b.key.token.expose(), &b.channel.slug);
    let rule = "=".repeat(72);
    let lines = [
        String::new(),
        rule.clone(),
        "OnAir first start: an admin account and a demo channel were created.".into(),
        "They are shown this once; only the password's hash is kept.".into(),
        String::new(),
        format!("  admin login   {user} / {password}"),
        String::new(),
        "  OBS > Settings > Stream > Service: Custom".into(),
        format!("    Server      {rtmp}"),
        format!("    Stream Key  {key}"),
        String::new(),
        format!("  ffmpeg -re -i input.mp4 -c copy -f flv {rtmp}/{key}"),
        format!("  watch         http://localhost:{http}/live/{slug}.flv"),
        format!("  log in        curl -X POST http://localhost:{http}/api/v1/auth/login \\"),
        "                  -H 'content-type: application/json' \\".into(),
        format!("                  -d '{{\"username\":\"{user}\",\"password\":\"PASSWORD\"}}'"),
        rule,
        String::new(),
    ];
    let mut lines = lines.to_vec();
    if let Some(url) = server
        .rtmps_addr
        .and_then(|addr| rtmps_url(&rtmp, addr.port()))
    {
        // Beside the plain server, which OBS shows first.
        let at = lines
            .iter()
            .position(|l| l.starts_with("    Server"))
            .map_or(0, |i| i + 1);
        lines.insert(at, format!("    or RTMPS    {url}"));
    }
    println!("{}", lines.join("\n"));
}

/// Swaps the server's log filter (SIGHUP); the subscriber's type differs by format, so the
/// reload handle is kept behind a closure.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// `ONAIR_LOG`, else `log.level`.
fn log_filter(config: &Config) -> String {
    std::env::var("ONAIR_LOG").unwrap_or_else(|_| config.log.level.clone())
}

/// The RTMPS twin of an `rtmp://HOST[:PORT]/APP` publish URL, on `port`; `None` for a URL
/// that is already `rtmps://` or not of that shape.
fn rtmps_url(rtmp: &str, port: u16) -> Option<String> {
    let (authority, app) = rtmp.strip_prefix("rtmp://")?.split_once('/')?;
    let host = match authority.rsplit_once(':') {
        Some((host, _)) if !authority.ends_with(']') => host,
        _ => authority,
    };
    Some(format!("rtmps://{host}:{port}/{app}"))
}

fn init_logging(config: &Config) -> SetFilter {
    let filter = EnvFilter::try_new(log_filter(config)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
    }
}

/// SIGHUP: loads the configuration again as at start (the file, then the environment the
/// process started with) and applies what can change at run time: the log filter, the TLS
/// certificate and the limits. A configuration that no longer loads changes nothing; a certificate that
/// no longer loads is kept in use while the rest applies. The log says what failed, and which
/// changed options wait for a restart.
fn reload(server: &RunningServer, path: Option<&Path>, set_filter: &SetFilter) {
    info!("SIGHUP: reloading the configuration");
    // The certificate files are read by the reload itself, which can keep the pair in use.
    let config = match Config::load_without_files(path, std::env::vars()) {
        Ok(loaded) => loaded.config,
        Err(e) => {
            tracing::warn!(error = %e, "configuration not reloaded; everything stays as it was");
            return;
        }
    };
    let filter = log_filter(&config);
    match EnvFilter::try_new(&filter)
        .map_err(|e| e.to_string())
        .and_then(set_filter)
    {
        Ok(()) => info!(%filter, "log filter set"),
        Err(e) => tracing::warn!(%filter, error = %e, "log filter not changed"),
    }
    server.reload(&config).log();
}

#[cfg(test)]
mod tests {
    use super::rtmps_url;

    #[test]
    fn the_rtmps_url_keeps_host_and_app_and_takes_the_tls_port() {
        let cases = [
            ("rtmp://localhost/live", Some("rtmps://localhost:1936/live")),
            (
                "rtmp://live.example.com:1935/live",
                Some("rtmps://live.example.com:1936/live"),
            ),
            ("rtmp://[::1]:1935/live", Some("rtmps://[::1]:1936/live")),
            ("rtmp://[::1]/live", Some("rtmps://[::1]:1936/live")),
            ("rtmps://live.example.com/live", None),
        ];
        for (rtmp, want) in cases {
            assert_eq!(rtmps_url(rtmp, 1936).as_deref(), want, "{rtmp}");
        }
    }
}
