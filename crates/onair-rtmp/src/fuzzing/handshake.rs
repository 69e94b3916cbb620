//! Fuzz entry point for the handshake (`fuzz/fuzz_targets/rtmp_handshake.rs`).
//!
//! The same bytes are fed as the client's stream to a [`ServerHandshake`] and as the server's
//! stream to a [`ClientHandshake`] of each kind, once whole and once cut into pieces, and the
//! invariants below are asserted on every step.

use bytes::Bytes;

use crate::handshake::{
    ClientHandshake, ClientHandshakeKind, HANDSHAKE_SIZE, HandshakeError, HandshakeKind,
    RANDOM_SIZE, RTMP_VERSION, SERVER_VERSION, ServerHandshake,
};

/// C0+C1 (or S0+S1).
const HELLO: usize = 1 + HANDSHAKE_SIZE;
/// The whole stream one side reads: C0+C1+C2 (or S0+S1+S2).
const STREAM: usize = 1 + 2 * HANDSHAKE_SIZE;
/// Piece sizes (cycled) for the split run, mixing single bytes with packet-sized reads.
const SPLITS: [usize; 6] = [1, 7, HANDSHAKE_SIZE, 2, 700, 3];
const RANDOM: [u8; RANDOM_SIZE] = [0x5A; RANDOM_SIZE];
/// The version field of S1 within S0+S1+S2: after the S0 byte and the 4-byte time.
const S1_VERSION: std::ops::Range<usize> = 5..9;

/// Everything observable from one run, compared between the whole and the split run.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    transmit: Vec<Bytes>,
    consumed: usize,
    done: bool,
    error: Option<HandshakeError>,
    kind: Option<HandshakeKind>,
}

/// Feeds `data` to both sides of the handshake and asserts their invariants: never more consumed
/// than given, left-over bytes only once done, done exactly after 3073 bytes, replies of exactly
/// the right sizes sent once, an error exactly when the version byte is not 3, and outputs that do
/// not depend on how the input was split.
pub fn handshake(data: &[u8]) {
    let whole = server(data, &[usize::MAX]);
    assert_eq!(
        whole,
        server(data, &SPLITS),
        "server output depends on the input split"
    );
    for kind in [ClientHandshakeKind::Simple, ClientHandshakeKind::Digest] {
        let whole = client(data, kind, &[usize::MAX]);
        assert_eq!(
            whole,
            client(data, kind, &SPLITS),
            "client output depends on the input split"
        );
    }
}

/// Cuts `data` into pieces of `sizes` (cycled) and hands each to `feed`, accumulating the
/// consumed count; `feed` returns false to stop.
fn run(
    data: &[u8],
    sizes: &[usize],
    outcome: &mut Outcome,
    mut feed: impl FnMut(&[u8], &mut Outcome) -> bool,
) {
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        if !feed(piece, outcome) {
            break;
        }
    }
    let bad_version = data.first().is_some_and(|&version| version != RTMP_VERSION);
    assert_eq!(
        outcome.error.is_some(),
        bad_version,
        "error exactly when C0/S0 is not 3"
    );
}

/// Checks one `handle_input` result; returns whether to keep feeding.
fn account(
    result: Result<usize, HandshakeError>,
    piece: &[u8],
    done: bool,
    outcome: &mut Outcome,
) -> bool {
    match result {
        Ok(n) => {
            assert!(n <= piece.len(), "consumed {n} of {} bytes", piece.len());
            assert!(
                n == piece.len() || done,
                "bytes left over before the handshake ended"
            );
            outcome.consumed += n;
            assert!(
                outcome.consumed <= STREAM,
                "consumed {} bytes",
                outcome.consumed
            );
            assert_eq!(
                done,
                outcome.consumed == STREAM,
                "done iff {STREAM} bytes consumed"
            );
            true
        }
        Err(error) => {
            assert_eq!(outcome.consumed, 0, "only the version byte can fail");
            outcome.error = Some(error);
            false
        }
    }
}

fn server(data: &[u8], sizes: &[usize]) -> Outcome {
    let mut server = ServerHandshake::new(RANDOM, 0x1234_5678);
    let mut outcome = Outcome::default();
    run(data, sizes, &mut outcome, |piece, outcome| {
        let result = server.handle_input(piece);
        let keep_going = account(result, piece, server.is_done(), outcome);
        while let Some(reply) = server.poll_transmit() {
            assert!(outcome.transmit.is_empty(), "S0+S1+S2 sent twice");
            assert_eq!(reply.len(), STREAM);
            assert_eq!(reply[0], RTMP_VERSION);
            outcome.transmit.push(reply);
        }
        let hello_read = outcome.consumed >= HELLO;
        assert_eq!(
            outcome.transmit.len(),
            usize::from(hello_read),
            "reply iff C0+C1 read"
        );
        assert_eq!(
            server.kind().is_some(),
            hello_read,
            "kind known iff C1 read"
        );
        keep_going
    });
    outcome.done = server.is_done();
    outcome.kind = server.kind();
    if let (Some(kind), Some(reply)) = (outcome.kind, outcome.transmit.first()) {
        match kind {
            HandshakeKind::Simple => {
                assert_eq!(
                    reply[S1_VERSION], [0; 4],
                    "simple S1 has a zero version field"
                );
                assert_eq!(reply[HELLO..], data[1..HELLO], "simple S2 echoes C1");
            }
            HandshakeKind::Digest { .. } => {
                assert_eq!(
                    reply[S1_VERSION], SERVER_VERSION,
                    "digest S1 carries our version"
                );
            }
        }
    }
    outcome
}

fn client(data: &[u8], kind: ClientHandshakeKind, sizes: &[usize]) -> Outcome {
    let mut client = ClientHandshake::new(RANDOM, 0x0102_0304, kind);
    let mut outcome = Outcome::default();
    let c0c1 = client.poll_transmit();
    assert_eq!(
        c0c1.as_ref().map(Bytes::len),
        Some(HELLO),
        "C0+C1 queued on creation"
    );
    outcome.transmit.extend(c0c1);
    run(data, sizes, &mut outcome, |piece, outcome| {
        let result = client.handle_input(piece);
        let keep_going = account(result, piece, client.is_done(), outcome);
        while let Some(c2) = client.poll_transmit() {
            assert_eq!(outcome.transmit.len(), 1, "C2 sent twice");
            assert_eq!(c2.len(), HANDSHAKE_SIZE);
            outcome.transmit.push(c2);
        }
        let hello_read = outcome.consumed >= HELLO;
        assert_eq!(
            outcome.transmit.len(),
            1 + usize::from(hello_read),
            "C2 iff S0+S1 read"
        );
        keep_going
    });
    outcome.done = client.is_done();
    if let (ClientHandshakeKind::Simple, Some(c2)) = (kind, outcome.transmit.get(1)) {
        assert_eq!(c2[..], data[1..HELLO], "simple C2 echoes S1");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_stream(kind: ClientHandshakeKind) -> Vec<u8> {
        let mut client = ClientHandshake::new([7; RANDOM_SIZE], 1, kind);
        let mut stream = client.poll_transmit().unwrap().to_vec();
        client.handle_input(&[RTMP_VERSION; HELLO]).unwrap();
        stream.extend_from_slice(&client.poll_transmit().unwrap());
        stream
    }

    #[test]
    fn handshake_holds_its_invariants_on_short_and_bad_inputs() {
        for data in [&[][..], &[3], &[6], &[6, 3, 3], &[3; 100], &[0; 5000]] {
            handshake(data);
        }
    }

    #[test]
    fn handshake_holds_its_invariants_on_real_streams_with_trailing_bytes() {
        for kind in [ClientHandshakeKind::Simple, ClientHandshakeKind::Digest] {
            let mut stream = client_stream(kind);
            handshake(&stream[..STREAM - 1]);
            handshake(&stream);
            stream.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0x04]);
            handshake(&stream);
        }
    }

    #[test]
    fn server_run_reports_a_digest_handshake() {
        let outcome = server(&client_stream(ClientHandshakeKind::Digest), &SPLITS);
        assert!(outcome.done);
        assert!(matches!(outcome.kind, Some(HandshakeKind::Digest { .. })));
    }
}
