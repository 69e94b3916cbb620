//! The RTMP handshake, sans-IO: [`ServerHandshake`] and [`ClientHandshake`].
//!
//! | What | Where it is specified |
//! | --- | --- |
//! | C0/S0 version byte, C1/S1 and C2/S2 layout | Adobe RTMP 1.0 spec §5.2.2–§5.2.4 |
//! | Digest ("complex", Flash Player 9+) handshake: digest offsets, keys, S2/C2 signature | not in the Adobe spec; clean-room "RTMPE.txt", nginx-rtmp `ngx_rtmp_handshake.c`, FFmpeg `rtmpproto.c` |
//!
//! The server answers whichever handshake the client offers: if C1 carries a valid Flash Player
//! digest in either scheme it replies with the digest handshake in the same scheme, otherwise with
//! the simple one. C2 is read but never verified, as nginx-rtmp does, because clients disagree on
//! what to put there. Neither side reads a clock or a random source: both are constructor arguments.
//!
//! Bytes that follow the handshake in the same input are not consumed; `handle_input` returns how
//! many bytes it took, and the caller hands the rest to the chunk decoder.
//!
//! ```
//! use onair_rtmp::handshake::{ClientHandshake, ClientHandshakeKind, HandshakeKind, ServerHandshake};
//!
//! let mut client = ClientHandshake::new([1; 1528], 0, ClientHandshakeKind::Digest);
//! let mut server = ServerHandshake::new([2; 1528], 1_000);
//! while !(client.is_done() && server.is_done()) {
//!     while let Some(bytes) = client.poll_transmit() {
//!         assert_eq!(server.handle_input(&bytes)?, bytes.len());
//!     }
//!     while let Some(bytes) = server.poll_transmit() {
//!         assert_eq!(client.handle_input(&bytes)?, bytes.len());
//!     }
//! }
//! assert!(matches!(server.kind(), Some(HandshakeKind::Digest { .. })));
//! # Ok::<(), onair_rtmp::handshake::HandshakeError>(())
//! ```

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{debug, trace};

/// The only RTMP version we speak: the C0/S0 byte (spec §5.2.2).
pub const RTMP_VERSION: u8 = 3;

/// Size of C1, S1, C2 and S2 (spec §5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;

/// Size of the random field of C1/S1: the packet minus the time and zero/version fields.
pub const RANDOM_SIZE: usize = HANDSHAKE_SIZE - 8;

/// Size of an HMAC-SHA256 digest in a digest-handshake packet.
pub const DIGEST_SIZE: usize = 32;

/// Version field (bytes 4..8) our server puts in S1 of a digest handshake; the value nginx-rtmp
/// sends. Clients only check that it is non-zero.
pub const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// Version field (bytes 4..8) our client puts in C1 of a digest handshake. A non-zero value tells
/// the server to look for a digest (a zero field means the simple handshake).
pub const CLIENT_VERSION: [u8; 4] = [0x0C, 0x00, 0x0D, 0x0E];

/// The 32 bytes shared by both handshake keys after their ASCII prefixes.
const KEY_SUFFIX: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// Length of the ASCII prefix `"Genuine Adobe Flash Player 001"` of [`FLASH_PLAYER_KEY`]; the C1
/// digest is keyed with the prefix alone.
const FLASH_PLAYER_PREFIX_LEN: usize = 30;

/// Length of the ASCII prefix `"Genuine Adobe Flash Media Server 001"` of
/// [`FLASH_MEDIA_SERVER_KEY`]; the S1 digest is keyed with the prefix alone.
const FLASH_MEDIA_SERVER_PREFIX_LEN: usize = 36;

/// The Flash Player key: `"Genuine Adobe Flash Player 001"` and 32 fixed bytes. Its first 30
/// bytes key the C1 digest; all 62 key the C2 signature.
pub const FLASH_PLAYER_KEY: [u8; 62] = concat(b"Genuine Adobe Flash Player 001", &KEY_SUFFIX);

/// The Flash Media Server key: `"Genuine Adobe Flash Media Server 001"` and 32 fixed bytes. Its
/// first 36 bytes key the S1 digest; all 68 key the S2 signature.
pub const FLASH_MEDIA_SERVER_KEY: [u8; 68] =
    concat(b"Genuine Adobe Flash Media Server 001", &KEY_SUFFIX);

/// Joins two byte arrays at compile time; a length mismatch fails const evaluation.
const fn concat<const A: usize, const B: usize, const N: usize>(
    a: &[u8; A],
    b: &[u8; B],
) -> [u8; N] {
    assert!(A + B == N);
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

/// C0 plus C1 (or S0 plus S1).
const VERSION_AND_PACKET: usize = 1 + HANDSHAKE_SIZE;

/// Which handshake a peer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeKind {
    /// The handshake of the Adobe spec: C1 carries no digest and S2 echoes it.
    Simple,
    /// The Flash Player 9 handshake: C1 and S1 carry HMAC-SHA256 digests.
    Digest {
        /// Where the digest sits in C1 (and therefore in our S1).
        scheme: DigestScheme,
    },
}

/// Where the 32-byte digest sits in a digest-handshake packet.
///
/// The 1528 bytes after the time and version fields are two 764-byte blocks, a key block and a
/// digest block; the first four bytes of the digest block give the digest's offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestScheme {
    /// Scheme 0: key block first, digest block at byte 772; the digest offset is
    /// `(p[772] + p[773] + p[774] + p[775]) % 728 + 776`.
    KeyThenDigest,
    /// Scheme 1: digest block first, at byte 8; the digest offset is
    /// `(p[8] + p[9] + p[10] + p[11]) % 728 + 12`. FFmpeg, librtmp and so OBS send this one.
    DigestThenKey,
}

impl DigestScheme {
    /// The conventional scheme number: 0 for [`KeyThenDigest`](Self::KeyThenDigest), 1 for
    /// [`DigestThenKey`](Self::DigestThenKey).
    pub fn number(self) -> u8 {
        match self {
            DigestScheme::KeyThenDigest => 0,
            DigestScheme::DigestThenKey => 1,
        }
    }

    /// Offset of the digest in `packet`; at most 1503, so the digest always fits.
    fn digest_offset(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        let block = match self {
            DigestScheme::KeyThenDigest => 772,
            DigestScheme::DigestThenKey => 8,
        };
        let sum: usize = packet[block..block + 4]
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        sum % 728 + block + 4
    }
}

/// What can go wrong during the handshake. Either side closes the connection on an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's C0 (or S0) asked for a version other than 3, e.g. 6 for encrypted RTMPE.
    #[error(
        "peer requested RTMP version {version}; only version 3 is supported (6 and 8 are encrypted RTMPE)"
    )]
    UnsupportedVersion {
        /// The version byte the peer sent.
        version: u8,
    },
}

/// The server side of the handshake: reads C0+C1, answers S0+S1+S2 at once, then reads C2.
#[derive(Debug)]
pub struct ServerHandshake {
    random: [u8; RANDOM_SIZE],
    epoch_ms: u32,
    state: ServerState,
    kind: Option<HandshakeKind>,
    transmit: Option<Bytes>,
}

#[derive(Debug)]
enum ServerState {
    AwaitC0C1 { received: Vec<u8> },
    AwaitC2 { remaining: usize },
    Done,
    Failed(HandshakeError),
}

impl ServerHandshake {
    /// Starts a server handshake. `random` fills the body of S1 and, in the digest handshake,
    /// the first 1504 bytes of S2 (peers only echo or sign these bytes, so reusing them is
    /// harmless); `epoch_ms` is the time field of S1.
    pub fn new(random: [u8; RANDOM_SIZE], epoch_ms: u32) -> Self {
        ServerHandshake {
            random,
            epoch_ms,
            state: ServerState::AwaitC0C1 {
                received: Vec::with_capacity(VERSION_AND_PACKET),
            },
            kind: None,
            transmit: None,
        }
    }

    /// Feeds bytes from the client, split anywhere, and returns how many were consumed. Bytes
    /// past the end of C2 are not consumed: they belong to the chunk stream.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::UnsupportedVersion`] as soon as C0 is not version 3; every later call
    /// returns the same error.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        loop {
            match &mut self.state {
                ServerState::AwaitC0C1 { received } => {
                    consumed += fill(received, VERSION_AND_PACKET, &buf[consumed..]);
                    if let Err(error) = check_version(received) {
                        self.state = ServerState::Failed(error.clone());
                        return Err(error);
                    }
                    if received.len() < VERSION_AND_PACKET {
                        return Ok(consumed);
                    }
                    let c1 = packet(received);
                    let (kind, reply) = self.reply(&c1);
                    trace!(?kind, "C0+C1 received, sending S0+S1+S2");
                    self.kind = Some(kind);
                    self.transmit = Some(reply);
                    self.state = ServerState::AwaitC2 {
                        remaining: HANDSHAKE_SIZE,
                    };
                }
                ServerState::AwaitC2 { remaining } => {
                    // C2 is skipped, not checked: nginx-rtmp does not verify it either, and
                    // clients differ in what they echo (protocol-notes §4.2).
                    let n = (*remaining).min(buf.len() - consumed);
                    *remaining -= n;
                    consumed += n;
                    if *remaining == 0 {
                        trace!("C2 received, handshake done");
                        self.state = ServerState::Done;
                    }
                    return Ok(consumed);
                }
                ServerState::Done => return Ok(consumed),
                ServerState::Failed(error) => return Err(error.clone()),
            }
        }
    }

    /// S0+S1+S2 (3073 bytes), once, after C0+C1 have arrived.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// Whether C2 has been read; the next byte from the client belongs to the chunk stream.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done)
    }

    /// The handshake the client used, known once C1 has arrived.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    fn reply(&self, c1: &[u8; HANDSHAKE_SIZE]) -> (HandshakeKind, Bytes) {
        let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        let kind = match find_digest(c1, &FLASH_PLAYER_KEY[..FLASH_PLAYER_PREFIX_LEN]) {
            Some((scheme, c1_digest)) => {
                let mut s1 = layout(self.epoch_ms, SERVER_VERSION, &self.random);
                imprint_digest(
                    &mut s1,
                    scheme,
                    &FLASH_MEDIA_SERVER_KEY[..FLASH_MEDIA_SERVER_PREFIX_LEN],
                );
                out.put_slice(&s1);
                out.put_slice(&signed_response(
                    &self.random,
                    &c1_digest,
                    &FLASH_MEDIA_SERVER_KEY,
                ));
                HandshakeKind::Digest { scheme }
            }
            None => {
                // A zero version field marks S1 as simple (spec §5.2.3). S2 echoes C1 verbatim, as
                // nginx-rtmp and SRS do: we have no clock to fill "time2", and librtmp compares
                // its whole C1 against S2.
                out.put_slice(&layout(self.epoch_ms, [0; 4], &self.random));
                out.put_slice(c1);
                HandshakeKind::Simple
            }
        };
        (kind, out.freeze())
    }
}

/// Which handshake a [`ClientHandshake`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientHandshakeKind {
    /// The Adobe-spec handshake: C1 has a zero version field and C2 echoes S1.
    Simple,
    /// The Flash Player 9 handshake with a digest in C1 (scheme 1, as FFmpeg and librtmp send),
    /// which some servers and CDNs require.
    Digest,
}

/// The client side of the handshake: sends C0+C1 at once, C2 after S0+S1, and is done after S2.
#[derive(Debug)]
pub struct ClientHandshake {
    random: [u8; RANDOM_SIZE],
    kind: ClientHandshakeKind,
    c1: Bytes,
    c1_digest: Option<[u8; DIGEST_SIZE]>,
    state: ClientState,
    transmit: VecDeque<Bytes>,
}

#[derive(Debug)]
enum ClientState {
    AwaitS0S1 { received: Vec<u8> },
    AwaitS2 { received: Vec<u8> },
    Done,
    Failed(HandshakeError),
}

impl ClientHandshake {
    /// Starts a client handshake and queues C0+C1. `random` fills the body of C1 and, in the
    /// digest handshake, the first 1504 bytes of C2; `epoch_ms` is the time field of C1.
    pub fn new(random: [u8; RANDOM_SIZE], epoch_ms: u32, kind: ClientHandshakeKind) -> Self {
        let (c1, c1_digest) = match kind {
            ClientHandshakeKind::Simple => (layout(epoch_ms, [0; 4], &random), None),
            ClientHandshakeKind::Digest => {
                let mut c1 = layout(epoch_ms, CLIENT_VERSION, &random);
                let digest = imprint_digest(
                    &mut c1,
                    DigestScheme::DigestThenKey,
                    &FLASH_PLAYER_KEY[..FLASH_PLAYER_PREFIX_LEN],
                );
                (c1, Some(digest))
            }
        };
        let mut c0c1 = BytesMut::with_capacity(VERSION_AND_PACKET);
        c0c1.put_u8(RTMP_VERSION);
        c0c1.put_slice(&c1);
        let c0c1 = c0c1.freeze();
        ClientHandshake {
            random,
            kind,
            c1: c0c1.slice(1..),
            c1_digest,
            state: ClientState::AwaitS0S1 {
                received: Vec::with_capacity(VERSION_AND_PACKET),
            },
            transmit: VecDeque::from([c0c1]),
        }
    }

    /// Feeds bytes from the server, split anywhere, and returns how many were consumed. Bytes
    /// past the end of S2 are not consumed: they belong to the chunk stream.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::UnsupportedVersion`] as soon as S0 is not version 3; every later call
    /// returns the same error.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        loop {
            match &mut self.state {
                ClientState::AwaitS0S1 { received } => {
                    consumed += fill(received, VERSION_AND_PACKET, &buf[consumed..]);
                    if let Err(error) = check_version(received) {
                        self.state = ClientState::Failed(error.clone());
                        return Err(error);
                    }
                    if received.len() < VERSION_AND_PACKET {
                        return Ok(consumed);
                    }
                    let s1 = packet(received);
                    let c2 = self.c2(&s1);
                    self.transmit.push_back(c2);
                    self.state = ClientState::AwaitS2 {
                        received: Vec::with_capacity(HANDSHAKE_SIZE),
                    };
                }
                ClientState::AwaitS2 { received } => {
                    consumed += fill(received, HANDSHAKE_SIZE, &buf[consumed..]);
                    if received.len() < HANDSHAKE_SIZE {
                        return Ok(consumed);
                    }
                    // Invariant: `fill` stopped at exactly HANDSHAKE_SIZE bytes.
                    let s2: [u8; HANDSHAKE_SIZE] = received[..]
                        .try_into()
                        .expect("S2 buffer holds exactly HANDSHAKE_SIZE bytes");
                    self.check_s2(&s2);
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(consumed),
                ClientState::Failed(error) => return Err(error.clone()),
            }
        }
    }

    /// C0+C1 (1537 bytes) first, then C2 (1536 bytes) once S0+S1 have arrived.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Whether S2 has been read; the next byte from the server belongs to the chunk stream.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }

    fn c2(&self, s1: &[u8; HANDSHAKE_SIZE]) -> Bytes {
        if self.kind == ClientHandshakeKind::Digest {
            match find_digest(s1, &FLASH_MEDIA_SERVER_KEY[..FLASH_MEDIA_SERVER_PREFIX_LEN]) {
                Some((_, s1_digest)) => {
                    let c2 = signed_response(&self.random, &s1_digest, &FLASH_PLAYER_KEY);
                    return Bytes::copy_from_slice(&c2);
                }
                None => debug!("S1 carries no valid digest; answering with the simple handshake"),
            }
        }
        // C2 echoes S1 verbatim, as librtmp does (spec §5.2.4 asks for the read time in
        // "time2", which we do not have and no server checks).
        Bytes::copy_from_slice(s1)
    }

    /// S2 is checked only to leave a trace: servers differ in what they send, and rejecting a
    /// server that works would gain nothing.
    fn check_s2(&self, s2: &[u8; HANDSHAKE_SIZE]) {
        // The time fields of an echo may legitimately differ (spec §5.2.4); the body may not.
        let echoes_c1 = s2[8..] == self.c1[8..];
        let signed = self.c1_digest.is_some_and(|digest| {
            let (body, signature) = s2.split_at(HANDSHAKE_SIZE - DIGEST_SIZE);
            let key = hmac_sha256(&FLASH_MEDIA_SERVER_KEY, &[&digest]);
            hmac_sha256(&key, &[body]) == signature
        });
        if echoes_c1 || signed {
            trace!(signed, "S2 received, handshake done");
        } else {
            debug!("S2 neither echoes C1 nor carries a valid signature; continuing anyway");
        }
    }
}

/// Appends to `received` up to `want` bytes in total from `input`; returns how many it took.
fn fill(received: &mut Vec<u8>, want: usize, input: &[u8]) -> usize {
    let n = want.saturating_sub(received.len()).min(input.len());
    received.extend_from_slice(&input[..n]);
    n
}

/// Rejects a C0/S0 other than version 3 as soon as its single byte has arrived.
fn check_version(received: &[u8]) -> Result<(), HandshakeError> {
    match received.first() {
        Some(&version) if version != RTMP_VERSION => {
            Err(HandshakeError::UnsupportedVersion { version })
        }
        _ => Ok(()),
    }
}

/// The C1/S1 packet of a complete C0+C1 (or S0+S1) buffer.
fn packet(received: &[u8]) -> [u8; HANDSHAKE_SIZE] {
    // Invariant: callers pass exactly VERSION_AND_PACKET bytes, the version byte first.
    received[1..]
        .try_into()
        .expect("version byte plus HANDSHAKE_SIZE bytes")
}

/// A C1/S1 packet: time, version (zero for the simple handshake), random.
fn layout(time: u32, version: [u8; 4], random: &[u8; RANDOM_SIZE]) -> [u8; HANDSHAKE_SIZE] {
    let mut packet = [0; HANDSHAKE_SIZE];
    packet[..4].copy_from_slice(&time.to_be_bytes());
    packet[4..8].copy_from_slice(&version);
    packet[8..].copy_from_slice(random);
    packet
}

/// HMAC-SHA256 over `packet` without the digest at `offset`.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    // Invariant: `digest_offset` returns at most 1503, so `offset + 32 <= 1536`.
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_SIZE..]])
}

/// Writes the digest keyed with `key` into `packet` where `scheme` puts it, and returns it.
fn imprint_digest(
    packet: &mut [u8; HANDSHAKE_SIZE],
    scheme: DigestScheme,
    key: &[u8],
) -> [u8; DIGEST_SIZE] {
    let offset = scheme.digest_offset(packet);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_SIZE].copy_from_slice(&digest);
    digest
}

/// Finds a digest keyed with `key` in `packet`, trying scheme 0 and then scheme 1 as nginx-rtmp
/// and FFmpeg do.
fn find_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    [DigestScheme::KeyThenDigest, DigestScheme::DigestThenKey]
        .into_iter()
        .find_map(|scheme| {
            let offset = scheme.digest_offset(packet);
            let digest = packet_digest(packet, offset, key);
            // A plain comparison is fine: the keys are public, so timing leaks nothing.
            (packet[offset..offset + DIGEST_SIZE] == digest).then_some((scheme, digest))
        })
}

/// S2 (or C2) of the digest handshake: 1504 random bytes and their HMAC-SHA256 keyed with
/// HMAC-SHA256(peer's digest, `key`).
fn signed_response(
    random: &[u8; RANDOM_SIZE],
    peer_digest: &[u8; DIGEST_SIZE],
    key: &[u8],
) -> [u8; HANDSHAKE_SIZE] {
    const BODY: usize = HANDSHAKE_SIZE - DIGEST_SIZE;
    let mut packet = [0; HANDSHAKE_SIZE];
    packet[..BODY].copy_from_slice(&random[..BODY]);
    let signing_key = hmac_sha256(key, &[peer_digest]);
    let signature = hmac_sha256(&signing_key, &[&packet[..BODY]]);
    packet[BODY..].copy_from_slice(&signature);
    packet
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    // Invariant: HMAC accepts keys of any length, so this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fixed pseudo-random fill (a 32-bit LCG, high byte), reproducible in any language.
    fn lcg_fill(seed: u32, out: &mut [u8]) {
        let mut state = seed;
        for byte in out {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *byte = (state >> 24) as u8;
        }
    }

    fn random(seed: u32) -> [u8; RANDOM_SIZE] {
        let mut out = [0; RANDOM_SIZE];
        lcg_fill(seed, &mut out);
        out
    }

    fn fp_key() -> Vec<u8> {
        let mut key = b"Genuine Adobe Flash Player 001".to_vec();
        key.extend_from_slice(
            &hex::decode("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
                .unwrap(),
        );
        key
    }

    fn fms_key() -> Vec<u8> {
        let mut key = b"Genuine Adobe Flash Media Server 001".to_vec();
        key.extend_from_slice(
            &hex::decode("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
                .unwrap(),
        );
        key
    }

    /// HMAC-SHA256 written out directly, independent of the module's helpers.
    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        for part in parts {
            Mac::update(&mut mac, part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Offset by the published formula: `sum(p[base..base+4]) % 728 + base + 4`.
    fn offset_at(packet: &[u8], base: usize) -> usize {
        packet[base..base + 4]
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()
            % 728
            + base
            + 4
    }

    /// C0+C1 of a Flash-Player-style digest handshake, built by the formula; returns it and the
    /// C1 digest.
    fn digest_c0c1(scheme_base: usize, seed: u32) -> (Vec<u8>, [u8; 32]) {
        let mut c1 = vec![0u8; 1536];
        c1[..4].copy_from_slice(&0x0001_0203u32.to_be_bytes());
        c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
        lcg_fill(seed, &mut c1[8..]);
        let offset = offset_at(&c1, scheme_base);
        let digest = hmac(&fp_key()[..30], &[&c1[..offset], &c1[offset + 32..]]);
        c1[offset..offset + 32].copy_from_slice(&digest);
        let mut c0c1 = vec![3];
        c0c1.extend_from_slice(&c1);
        (c0c1, digest)
    }

    fn run_server(input: &[u8]) -> (ServerHandshake, Vec<u8>, usize) {
        let mut server = ServerHandshake::new(random(7), 0xDEAD_BEEF);
        let consumed = server.handle_input(input).unwrap();
        let reply = server
            .poll_transmit()
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (server, reply, consumed)
    }

    /// Checks S0+S1+S2 of a digest reply against an independent computation.
    fn assert_digest_reply(reply: &[u8], scheme_base: usize, c1_digest: &[u8; 32]) {
        assert_eq!(reply.len(), 3073);
        assert_eq!(reply[0], 3);
        let (s1, s2) = reply[1..].split_at(1536);
        assert_eq!(s1[..4], 0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(s1[4..8], [0x0D, 0x0E, 0x0A, 0x0D]);
        let offset = offset_at(s1, scheme_base);
        let expected = hmac(&fms_key()[..36], &[&s1[..offset], &s1[offset + 32..]]);
        assert_eq!(s1[offset..offset + 32], expected, "S1 digest");
        let key = hmac(&fms_key(), &[c1_digest]);
        assert_eq!(s2[1504..], hmac(&key, &[&s2[..1504]]), "S2 signature");
    }

    #[test]
    fn keys_match_the_published_bytes() {
        assert_eq!(FLASH_PLAYER_KEY.to_vec(), fp_key());
        assert_eq!(FLASH_MEDIA_SERVER_KEY.to_vec(), fms_key());
    }

    #[test]
    fn server_detects_scheme_0_digest_and_replies_in_scheme_0() {
        let (c0c1, c1_digest) = digest_c0c1(772, 1);
        let (server, reply, consumed) = run_server(&c0c1);
        assert_eq!(consumed, 1537);
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Digest {
                scheme: DigestScheme::KeyThenDigest
            })
        );
        assert_digest_reply(&reply, 772, &c1_digest);
    }

    #[test]
    fn server_detects_scheme_1_digest_and_replies_in_scheme_1() {
        let (c0c1, c1_digest) = digest_c0c1(8, 2);
        let (server, reply, _) = run_server(&c0c1);
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Digest {
                scheme: DigestScheme::DigestThenKey
            })
        );
        assert_digest_reply(&reply, 8, &c1_digest);
    }

    #[test]
    fn server_reply_matches_an_external_hmac_vector() {
        // Digests computed outside Rust (Python hmac/hashlib) for the same LCG fills, so the
        // test does not only agree with itself.
        let (c0c1, c1_digest) = digest_c0c1(8, 2);
        assert_eq!(hex::encode(c1_digest), C1_DIGEST_SCHEME_1_SEED_2);
        let (_, reply, _) = run_server(&c0c1);
        assert_eq!(
            hex::encode(&reply[1 + 1536 + 1504..]),
            S2_SIGNATURE_SCHEME_1_SEED_2
        );
    }

    const C1_DIGEST_SCHEME_1_SEED_2: &str =
        "17de06f6ba2bb7ab5b77d2fdfe963ce12e6b0b3927f0352af81224a8afd070c8";
    const S2_SIGNATURE_SCHEME_1_SEED_2: &str =
        "495a9f5876bd673f2501739af1515f6dd697db1fad5fd3428dd2e01e2a3c32e3";

    #[test]
    fn simple_c1_gets_an_exact_echo_in_s2() {
        let mut c0c1 = vec![3, 0, 0, 0x12, 0x34, 0, 0, 0, 0];
        c0c1.extend_from_slice(&random(3));
        let (server, reply, _) = run_server(&c0c1);
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(reply[0], 3);
        let (s1, s2) = reply[1..].split_at(1536);
        assert_eq!(s1[..4], 0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(s1[4..8], [0, 0, 0, 0]);
        assert_eq!(s1[8..], random(7));
        assert_eq!(s2, &c0c1[1..]);
    }

    #[test]
    fn c1_with_a_version_but_a_wrong_digest_gets_the_simple_handshake() {
        let (mut c0c1, _) = digest_c0c1(8, 4);
        let offset = 1 + offset_at(&c0c1[1..], 8);
        c0c1[offset] ^= 0xFF;
        let (server, reply, _) = run_server(&c0c1);
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(reply[1537..], c0c1[1..]);
    }

    #[test]
    fn server_rejects_rtmpe_version_6_on_the_first_byte() {
        let mut server = ServerHandshake::new(random(1), 0);
        let error = server.handle_input(&[6]).unwrap_err();
        assert_eq!(error, HandshakeError::UnsupportedVersion { version: 6 });
        assert!(error.to_string().contains('6'));
        assert_eq!(server.handle_input(&[3; 10]), Err(error));
        assert_eq!(server.poll_transmit(), None);
        assert!(!server.is_done());
    }

    #[test]
    fn client_rejects_a_server_version_other_than_3() {
        let mut client = ClientHandshake::new(random(1), 0, ClientHandshakeKind::Simple);
        assert_eq!(
            client.handle_input(&[0x08, 0, 0]),
            Err(HandshakeError::UnsupportedVersion { version: 8 })
        );
    }

    #[test]
    fn server_leaves_trailing_bytes_after_c2_unconsumed() {
        let mut input = vec![3];
        input.extend_from_slice(&[0; 1536]);
        input.extend_from_slice(&[0xAA; 1536]);
        input.extend_from_slice(&[0x02, 0x00, 0x00]);
        let (server, _, consumed) = run_server(&input);
        assert_eq!(consumed, 3073);
        assert!(server.is_done());
        let mut server = server;
        assert_eq!(server.handle_input(&[1, 2, 3]), Ok(0));
    }

    #[test]
    fn server_is_not_done_one_byte_before_the_end_of_c2() {
        let input = [3; 3073];
        let mut server = ServerHandshake::new(random(1), 0);
        assert_eq!(server.handle_input(&input[..3072]), Ok(3072));
        assert!(!server.is_done());
        assert_eq!(server.handle_input(&input[3072..]), Ok(1));
        assert!(server.is_done());
    }

    #[test]
    fn client_sends_simple_c0c1_on_creation() {
        let mut client = ClientHandshake::new(random(5), 0x0102_0304, ClientHandshakeKind::Simple);
        let c0c1 = client.poll_transmit().unwrap();
        assert_eq!(c0c1.len(), 1537);
        assert_eq!(c0c1[..9], [3, 1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(c0c1[9..], random(5));
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn client_sends_digest_c1_with_scheme_1_digest() {
        let mut client = ClientHandshake::new(random(5), 0, ClientHandshakeKind::Digest);
        let c0c1 = client.poll_transmit().unwrap();
        let c1 = &c0c1[1..];
        assert_eq!(c1[4..8], [0x0C, 0x00, 0x0D, 0x0E]);
        let offset = offset_at(c1, 8);
        assert_eq!(
            c1[offset..offset + 32],
            hmac(&fp_key()[..30], &[&c1[..offset], &c1[offset + 32..]])
        );
    }

    /// Runs a client and a server against each other in memory; returns the server, the C2 the
    /// client sent, and the server's S0+S1+S2.
    fn pair(kind: ClientHandshakeKind) -> (ServerHandshake, ClientHandshake, Vec<u8>, Vec<u8>) {
        let mut client = ClientHandshake::new(random(11), 100, kind);
        let mut server = ServerHandshake::new(random(12), 200);
        let c0c1 = client.poll_transmit().unwrap();
        assert_eq!(server.handle_input(&c0c1), Ok(1537));
        let reply = server.poll_transmit().unwrap();
        assert_eq!(reply.len(), 3073);
        assert_eq!(client.handle_input(&reply[..1537]), Ok(1537));
        let c2 = client.poll_transmit().unwrap();
        assert_eq!(c2.len(), 1536);
        assert!(!client.is_done());
        assert_eq!(client.handle_input(&reply[1537..]), Ok(1536));
        assert!(client.is_done());
        assert_eq!(server.handle_input(&c2), Ok(1536));
        assert!(server.is_done());
        (server, client, c2.to_vec(), reply.to_vec())
    }

    #[test]
    fn simple_client_and_server_complete_in_memory() {
        let (server, _, c2, reply) = pair(ClientHandshakeKind::Simple);
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(c2, reply[1..1537], "C2 echoes S1");
    }

    #[test]
    fn digest_client_and_server_complete_in_memory() {
        let (server, _, c2, reply) = pair(ClientHandshakeKind::Digest);
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Digest {
                scheme: DigestScheme::DigestThenKey
            })
        );
        let s1 = &reply[1..1537];
        let offset = offset_at(s1, 8);
        let key = hmac(&fp_key(), &[&s1[offset..offset + 32]]);
        assert_eq!(c2[1504..], hmac(&key, &[&c2[..1504]]), "C2 signature");
    }

    #[test]
    fn digest_client_echoes_s1_without_a_digest() {
        let mut client = ClientHandshake::new(random(1), 0, ClientHandshakeKind::Digest);
        client.poll_transmit();
        let mut s0s1 = vec![3, 0, 0, 0, 9, 0, 0, 0, 0];
        s0s1.extend_from_slice(&random(2));
        assert_eq!(client.handle_input(&s0s1), Ok(1537));
        assert_eq!(client.poll_transmit().unwrap(), s0s1[1..]);
    }

    #[test]
    fn client_leaves_trailing_bytes_after_s2_unconsumed() {
        let mut client = ClientHandshake::new(random(1), 0, ClientHandshakeKind::Simple);
        let mut input = vec![3; 3073];
        input.extend_from_slice(&[0xEE; 5]);
        assert_eq!(client.handle_input(&input), Ok(3073));
        assert!(client.is_done());
        assert_eq!(client.handle_input(&input[3073..]), Ok(0));
    }

    #[test]
    fn client_queues_c2_behind_an_unpolled_c0c1() {
        let mut client = ClientHandshake::new(random(1), 0, ClientHandshakeKind::Simple);
        assert_eq!(client.handle_input(&[3; 1537]), Ok(1537));
        assert_eq!(client.poll_transmit().map(|b| b.len()), Some(1537));
        assert_eq!(client.poll_transmit().map(|b| b.len()), Some(1536));
        assert_eq!(client.poll_transmit(), None);
    }

    /// Feeds `input` to a fresh server in pieces of the given sizes (cycled).
    fn feed_split(input: &[u8], sizes: &[usize]) -> (Vec<u8>, usize, bool, Option<HandshakeKind>) {
        let mut server = ServerHandshake::new(random(9), 9);
        let mut reply = Vec::new();
        let mut consumed = 0;
        let mut pos = 0;
        for &size in sizes.iter().cycle() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + size).min(input.len());
            let n = server.handle_input(&input[pos..end]).unwrap();
            assert!(n <= end - pos);
            consumed += n;
            pos = end;
            while let Some(bytes) = server.poll_transmit() {
                reply.extend_from_slice(&bytes);
            }
        }
        (reply, consumed, server.is_done(), server.kind())
    }

    proptest! {
        #[test]
        fn any_split_of_the_client_stream_gives_the_same_server_output(
            digest in any::<bool>(),
            client_random in proptest::collection::vec(any::<u8>(), RANDOM_SIZE),
            trailing in proptest::collection::vec(any::<u8>(), 0..64),
            sizes in proptest::collection::vec(1usize..700, 1..12),
        ) {
            let kind = if digest { ClientHandshakeKind::Digest } else { ClientHandshakeKind::Simple };
            let mut client = ClientHandshake::new(client_random.try_into().unwrap(), 1, kind);
            let mut stream = client.poll_transmit().unwrap().to_vec();
            client.handle_input(&[3; 1537]).unwrap();
            stream.extend_from_slice(&client.poll_transmit().unwrap());
            stream.extend_from_slice(&trailing);

            let whole = feed_split(&stream, &[stream.len()]);
            let split = feed_split(&stream, &sizes);
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(whole.0.len(), 3073);
            prop_assert_eq!(whole.1, 3073);
            prop_assert!(whole.2);
            let expected = if digest {
                HandshakeKind::Digest { scheme: DigestScheme::DigestThenKey }
            } else {
                HandshakeKind::Simple
            };
            prop_assert_eq!(whole.3, Some(expected));
        }

        #[test]
        fn random_c1_never_panics_and_gets_a_full_reply(
            c1 in proptest::collection::vec(any::<u8>(), 1536),
        ) {
            let mut c0c1 = vec![3];
            c0c1.extend_from_slice(&c1);
            let (server, reply, consumed) = run_server(&c0c1);
            prop_assert_eq!(consumed, 1537);
            prop_assert_eq!(reply.len(), 3073);
            prop_assert!(server.kind().is_some());
            prop_assert!(!server.is_done());
        }

        #[test]
        fn random_bytes_never_panic_either_side(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
        ) {
            crate::fuzzing::handshake::handshake(&data);
        }
    }
}
