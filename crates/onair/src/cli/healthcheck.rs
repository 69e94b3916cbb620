//! `onair healthcheck [URL]`: exit 0 when the server answers `GET /healthz` with 200, else 1.
//!
//! For container health checks: the runtime image has no curl or wget, and the binary that is
//! there speaks enough HTTP/1.1 for one GET. Only `http://` is spoken; behind TLS, check the
//! plain listener the proxy forwards to.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use onair::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `onair healthcheck` arguments.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// What to ask (default: /healthz on the configured HTTP port of this machine).
    pub url: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

/// Asks the server and fails unless it answers 200.
pub async fn run(args: HealthcheckArgs, config: &Config) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(|| {
        let listen = config.http.listen;
        let ip = match listen.ip() {
            ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip => ip,
        };
        format!(
            "http://{}/healthz",
            std::net::SocketAddr::new(ip, listen.port())
        )
    });
    let (authority, path) = split_url(&url)?;
    let status = tokio::time::timeout(args.timeout, get(authority, path))
        .await
        .with_context(|| format!("{url}: no answer within {:?}", args.timeout))?
        .with_context(|| url.clone())?;
    if status != 200 {
        bail!("{url}: HTTP status {status}");
    }
    println!("{url}: ok");
    Ok(())
}

/// `http://host:port/path` as (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are checked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("{url}: expected http://HOST[:PORT]/PATH");
    }
    Ok((authority, path))
}

/// One `GET`; the status code of the answer.
async fn get(authority: &str, path: &str) -> anyhow::Result<u16> {
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    // The status line is all we need: `HTTP/1.1 200 OK`.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    line.split(' ')
        .nth(1)
        .filter(|_| line.starts_with("HTTP/1."))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/healthz").unwrap(),
            ("127.0.0.1:8080", "/healthz")
        );
        assert_eq!(split_url("http://onair").unwrap(), ("onair", "/"));
        assert!(split_url("https://onair/healthz").is_err());
        assert!(split_url("http:///healthz").is_err());
    }

    #[tokio::test]
    async fn a_200_passes_and_anything_else_fails() {
        for (answer, expected) in [
            ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", Some(200)),
            ("HTTP/1.1 503 Service Unavailable\r\n\r\n", Some(503)),
            ("SSH-2.0-OpenSSH\r\n", None),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 512];
                let n = socket.read(&mut request).await.unwrap();
                assert!(request[..n].starts_with(b"GET /healthz HTTP/1.1\r\n"));
                socket.write_all(answer.as_bytes()).await.unwrap();
            });
            let status = get(&addr, "/healthz").await.ok();
            assert_eq!(status, expected, "{answer:?}");
            server.await.unwrap();
        }
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(get(&addr, "/healthz").await.is_err());
    }
}
