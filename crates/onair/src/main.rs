//! The `onair` command: the server (`onair serve`, the default) and its tools.

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onair::auth::DevAuth;
use onair::config::{Config, LogFormat};
use onair::server::RunningServer;
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
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Publish an FLV file to an RTMP server in real time, like an encoder.
    ///
    /// Example: onair publish demo.flv rtmp://localhost/live/STREAM_KEY --loop
    Publish(cli::publish::PublishArgs),
    /// Play a stream over RTMP and write it as FLV to a file or stdout.
    ///
    /// Example: onair play rtmp://localhost/live/demo -o demo.flv --duration 10s
    Play(cli::play::PlayArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The clients need no server configuration: a broken onair.toml must not stop them.
    let load = || {
        Config::load(cli.config.as_deref(), std::env::vars()).context("loading the configuration")
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = load()?;
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(config))
        }
        Command::Config => {
            print!("{}", load()?.redacted_toml());
            Ok(())
        }
        Command::Publish(args) => {
            init_client_logging();
            exit_with(client_runtime()?.block_on(cli::publish::run(args)))
        }
        Command::Play(args) => {
            init_client_logging();
            exit_with(client_runtime()?.block_on(cli::play::run(args)))
        }
    }
}

/// Ends a client command: an error becomes one line on stderr (the chain of causes, without
/// the backtrace `RUST_BACKTRACE=1` would add to `main`'s report) and exit status 1.
fn exit_with(result: anyhow::Result<()>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }
    }
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

async fn serve(config: Config) -> anyhow::Result<()> {
    info!(config = %config.redacted_json(), "effective configuration");
    if config.dev.open {
        tracing::warn!("dev.open is on: anyone can publish to any channel name");
    }
    if !config.dev.open && config.dev.keys.is_empty() {
        tracing::warn!(
            "no stream keys configured ([[dev.keys]]) and dev.open is off: every publish will be refused"
        );
    }
    let auth = DevAuth::new(config.dev.clone());
    let server = RunningServer::start(config, auth).await?;
    server.run_until_signal().await;
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = std::env::var("ONAIR_LOG").unwrap_or_else(|_| config.log.level.clone());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
