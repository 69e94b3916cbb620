//! A minimal HTTP/1.1 client over a tokio `TcpStream`: one request per connection
//! (`Connection: close`), headers parsed, the body decoded from chunked transfer coding,
//! `Content-Length` or read-to-close. Enough for HTTP-FLV, `/metrics` and CORS checks.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head we accept.
const MAX_HEAD: usize = 64 * 1024;

/// A response whose head has been read; the body is read on demand.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body as text, up to `timeout`.
    pub async fn text(mut self, timeout: Duration) -> anyhow::Result<String> {
        let mut out = Vec::new();
        tokio::time::timeout(timeout, async {
            while let Some(b) = self.body.next().await? {
                out.extend_from_slice(&b);
            }
            anyhow::Ok(())
        })
        .await
        .context("body not complete in time")??;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Transfer-Encoding: chunked`; bytes left of the current chunk, if inside one.
    Chunked { left: Option<usize> },
    /// `Content-Length`: bytes left.
    Length(usize),
    /// Until the server closes.
    Close,
    /// Finished.
    Done,
}

/// A response body, decoded as it arrives.
#[derive(Debug)]
pub struct Body {
    stream: TcpStream,
    buf: BytesMut,
    framing: Framing,
}

impl Body {
    /// The next piece of the decoded body; `None` at its end. Waits as long as the server
    /// takes: wrap in a timeout.
    pub async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(left) => {
                    if self.buf.is_empty() && !self.fill().await? {
                        bail!("connection closed with {left} body bytes missing");
                    }
                    let n = left.min(self.buf.len());
                    self.framing = Framing::Length(left - n);
                    return Ok(Some(self.buf.split_to(n).freeze()));
                }
                Framing::Close => {
                    if self.buf.is_empty() && !self.fill().await? {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                Framing::Chunked { left: Some(0) } => {
                    // Every chunk's data ends with CRLF (RFC 9112 §7.1).
                    while self.buf.len() < 2 {
                        ensure!(self.fill().await?, "connection closed inside a chunk");
                    }
                    ensure!(&self.buf[..2] == b"\r\n", "chunk data not followed by CRLF");
                    self.buf.advance(2);
                    self.framing = Framing::Chunked { left: None };
                }
                Framing::Chunked { left: Some(left) } => {
                    if self.buf.is_empty() {
                        ensure!(self.fill().await?, "connection closed inside a chunk");
                    }
                    let n = left.min(self.buf.len());
                    self.framing = Framing::Chunked {
                        left: Some(left - n),
                    };
                    return Ok(Some(self.buf.split_to(n).freeze()));
                }
                Framing::Chunked { left: None } => {
                    let line = self.line().await?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16)
                        .with_context(|| format!("bad chunk size line {line:?}"))?;
                    if size == 0 {
                        // Trailer fields, then an empty line.
                        while !self.line().await?.is_empty() {}
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    self.framing = Framing::Chunked { left: Some(size) };
                }
            }
        }
    }

    /// The connection itself, for tests that read raw bytes (or none); bytes already
    /// buffered are dropped.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> anyhow::Result<bool> {
        self.buf.reserve(16 * 1024);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.advance(i + 2);
                return Ok(line);
            }
            ensure!(self.buf.len() < MAX_HEAD, "line too long");
            ensure!(self.fill().await?, "connection closed in a chunk header");
        }
    }
}

/// Splits `http://host:port/path` (or `ws://`) into the authority and the path.
pub fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .with_context(|| format!("not an http:// url: {url}"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// Sends `method url` with `headers` on a new connection and reads the response head, waiting
/// up to `timeout` for it.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let (authority, path) = split_url(url)?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(authority))
        .await
        .with_context(|| format!("connect to {authority} timed out"))??;
    request_on(stream, method, authority, path, headers, timeout).await
}

/// Like [`request`] on a stream the caller connected (e.g. with a small receive buffer).
pub async fn request_on(
    stream: TcpStream,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Response> {
    request_with_body_on(stream, method, authority, path, headers, b"", timeout).await
}

/// Like [`request_on`], sending `body` with its `Content-Length` (none when it is empty).
pub async fn request_with_body_on(
    mut stream: TcpStream,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    tokio::time::timeout(timeout, read_head(stream, method))
        .await
        .with_context(|| format!("no response head to {method} {path} within {timeout:?}"))?
}

/// A connection to `addr` from the loopback address `source` (any of 127.0.0.0/8 on Linux),
/// so one test can be many clients to a server that counts per address.
pub async fn connect_from(
    source: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// `POST` of a JSON `body` to `path` on `addr` from `source`: the status, `Retry-After` and
/// the body text.
pub async fn post_json_from(
    source: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<(u16, Option<String>, String)> {
    let stream = tokio::time::timeout(timeout, connect_from(source, addr))
        .await
        .with_context(|| format!("connect to {addr} timed out"))??;
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let authority = addr.to_string();
    let response = request_with_body_on(
        stream,
        "POST",
        &authority,
        path,
        &all,
        body.as_bytes(),
        timeout,
    )
    .await?;
    let status = response.status;
    let retry_after = response.header("retry-after").map(str::to_owned);
    Ok((status, retry_after, response.text(timeout).await?))
}

/// `GET url` and the whole body as text; fails on a status other than 200.
pub async fn get_text(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let response = request("GET", url, &[], timeout).await?;
    ensure!(
        response.status == 200,
        "GET {url}: status {}",
        response.status
    );
    response.text(timeout).await
}

async fn read_head(mut stream: TcpStream, method: &str) -> anyhow::Result<Response> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        ensure!(
            buf.len() < MAX_HEAD,
            "response head larger than {MAX_HEAD} bytes"
        );
        ensure!(
            stream.read_buf(&mut buf).await? > 0,
            "connection closed before the response head"
        );
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let framing =
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Done
        } else if find("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked { left: None }
        } else if let Some(len) = find("content-length") {
            Framing::Length(
                len.parse()
                    .with_context(|| format!("bad content-length {len:?}"))?,
            )
        } else {
            Framing::Close
        };
    Ok(Response {
        status,
        headers,
        body: Body {
            stream,
            buf,
            framing,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `raw` to one client, one byte per write so every parser state sees a split.
    async fn serve_once(raw: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await.unwrap();
            for b in raw {
                socket.write_all(&[*b]).await.unwrap();
            }
        });
        format!("http://{addr}/x")
    }

    #[tokio::test]
    async fn chunked_bodies_decode_across_any_split() {
        let url = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: video/x-flv\r\n\r\n\
              3\r\nFLV\r\na;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
        )
        .await;
        let response = request("GET", &url, &[], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Content-Type"), Some("video/x-flv"));
        assert_eq!(
            response.text(Duration::from_secs(5)).await.unwrap(),
            "FLV0123456789"
        );
    }

    #[tokio::test]
    async fn length_delimited_bodies_stop_at_their_length() {
        let url = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!").await;
        let response = request("GET", &url, &[], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(
            response.text(Duration::from_secs(5)).await.unwrap(),
            "nope!"
        );
    }
}
