//! Raw RTMP bytes for tests of misbehaving peers: a plain handshake, a hand-built chunk, and
//! a bounded wait for the server to close a socket.

use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of C1/S1/C2/S2 (RTMP 1.0 §5.2.3).
pub const HANDSHAKE_LEN: usize = 1536;

/// A C1 of the simple (version 3, no digest) handshake: time, four zero bytes, random.
pub fn c1() -> Vec<u8> {
    let mut c1 = vec![0u8; HANDSHAKE_LEN];
    for b in &mut c1[8..] {
        *b = rand::random();
    }
    c1
}

/// Performs the simple handshake as a client: C0+C1, read S0+S1+S2, send C2 (an echo of S1).
pub async fn handshake(stream: &mut TcpStream, timeout: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, async {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&c1());
        stream.write_all(&c0c1).await?;
        let mut s = vec![0u8; 1 + 2 * HANDSHAKE_LEN];
        stream
            .read_exact(&mut s)
            .await
            .context("reading S0+S1+S2")?;
        ensure!(s[0] == 3, "S0 is version {}, not 3", s[0]);
        stream.write_all(&s[1..=HANDSHAKE_LEN]).await?;
        anyhow::Ok(())
    })
    .await
    .context("handshake timed out")?
}

/// A type-0 chunk header on chunk stream 3 (commands) that claims a message of `length`
/// bytes of `type_id` on message stream 0, followed by `body`.
pub fn chunk_type0(type_id: u8, length: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x03];
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// How a socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed (FIN).
    Eof,
    /// The peer reset the connection.
    Reset,
}

/// Reads and discards until the server closes the connection, for at most `timeout`.
/// Returns how it closed and how many bytes came first, or `None` if it stayed open.
pub async fn read_until_closed(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Option<(Closed, usize)> {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(timeout, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return (Closed::Eof, total),
                Ok(n) => total += n,
                Err(_) => return (Closed::Reset, total),
            }
        }
    })
    .await
    .ok()
}
