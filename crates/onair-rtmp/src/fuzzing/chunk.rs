//! Fuzz entry point for the chunk decoder (`fuzz/fuzz_targets/rtmp_chunk.rs`).

use bytes::BytesMut;

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, RawMessage};
use crate::limits::RtmpLimits;
use crate::message::{Message, TYPE_ABORT, TYPE_AGGREGATE, TYPE_SET_CHUNK_SIZE, split_aggregate};

/// Limits small enough that the fuzzer explores the budget errors instead of allocating
/// megabytes per input.
const LIMITS: RtmpLimits = RtmpLimits {
    max_message_len: 0xFF_FFFF,
    max_chunk_size: 0x7FFF_FFFF,
    max_chunk_streams: 16,
    max_partial_bytes: 1 << 20,
};

/// Feeds `data[1..]` to a [`ChunkDecoder`] whose initial chunk size `data[0]` picks, and asserts:
///
/// - feeding the bytes in several different splits yields the same messages, and the same error
///   at the same point, as feeding them all at once;
/// - no payload is longer than [`RtmpLimits::max_message_len`];
/// - [`Message::decode`] (and [`split_aggregate`] for aggregates) never panics on any of them;
/// - re-encoding the messages with a [`ChunkEncoder`] and decoding that gives them back.
///
/// Set Chunk Size and Abort messages are applied as a session applies them, so their effect on
/// later chunks is exercised too.
pub fn chunk(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let chunk_size = match selector % 8 {
        0 => 128,
        1 => 1,
        2 => 4096,
        3 => 65536,
        4 => 0x7FFF_FFFF,
        _ => u32::from(selector),
    };

    let whole = run(chunk_size, &[input]);
    let patterns: [&dyn Fn(usize) -> usize; 4] = [
        &|_| 1,
        &|i| [2, 3, 5, 7, 11][i % 5],
        &|_| input.len() / 3 + 1,
        &|i| usize::from(input.get(i).copied().unwrap_or(0) % 17) + 1,
    ];
    for pattern in patterns {
        let mut pieces = Vec::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(pattern(i).min(rest.len()));
            pieces.push(piece);
            rest = tail;
            i += 1;
        }
        assert_eq!(
            run(chunk_size, &pieces),
            whole,
            "split decoding differs from whole decoding"
        );
    }

    let (messages, _) = whole;
    for raw in &messages {
        assert!(
            raw.payload.len() <= LIMITS.max_message_len as usize,
            "payload of {} bytes exceeds the limit",
            raw.payload.len()
        );
        let _ = Message::decode(raw);
        if raw.type_id == TYPE_AGGREGATE
            && let Ok(subs) = split_aggregate(raw)
        {
            for sub in &subs {
                let _ = Message::decode(sub);
            }
        }
    }

    let reencode_size = u32::from(selector % 7) * 37 + 1;
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(reencode_size);
    let mut wire = BytesMut::new();
    for raw in &messages {
        encoder.encode(raw, &mut wire);
    }
    let mut decoder = ChunkDecoder::new(RtmpLimits::default());
    if let Err(error) = decoder.set_chunk_size(reencode_size) {
        panic!("valid chunk size {reencode_size} rejected: {error}");
    }
    let mut again = Vec::new();
    loop {
        match decoder.decode(&mut wire) {
            Ok(Some(raw)) => again.push(raw),
            Ok(None) => break,
            Err(error) => panic!("re-encoded messages fail to decode: {error}"),
        }
    }
    assert!(wire.is_empty(), "re-encoded stream has trailing bytes");
    assert_eq!(again, messages, "re-encoded messages decode differently");
}

/// Decodes the concatenation of `pieces`, appending one piece at a time, until the input ends or
/// an error closes the "connection".
fn run(chunk_size: u32, pieces: &[&[u8]]) -> (Vec<RawMessage>, Option<ChunkError>) {
    let mut decoder = ChunkDecoder::new(LIMITS);
    let mut messages = Vec::new();
    if let Err(error) = decoder.set_chunk_size(chunk_size) {
        return (messages, Some(error));
    }
    let mut buf = BytesMut::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(raw)) => {
                    let applied = match Message::decode(&raw) {
                        Ok(Message::SetChunkSize(size)) if raw.type_id == TYPE_SET_CHUNK_SIZE => {
                            decoder.set_chunk_size(size)
                        }
                        Ok(Message::Abort { csid }) if raw.type_id == TYPE_ABORT => {
                            decoder.abort(csid);
                            Ok(())
                        }
                        _ => Ok(()),
                    };
                    messages.push(raw);
                    if let Err(error) = applied {
                        return (messages, Some(error));
                    }
                }
                Ok(None) => break,
                Err(error) => return (messages, Some(error)),
            }
        }
    }
    (messages, None)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::chunk::encode_standalone;

    fn stream(messages: &[RawMessage], chunk_size: u32) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(chunk_size);
        let mut out = BytesMut::new();
        for m in messages {
            encoder.encode(m, &mut out);
        }
        out.to_vec()
    }

    fn raw(csid: u32, timestamp: u32, type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid,
            timestamp,
            type_id,
            message_stream_id: 1,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn fuzz_chunk_accepts_trivial_inputs() {
        chunk(&[]);
        chunk(&[0]);
        chunk(&[0, 0xff, 0x00, 0x01, 0x02]);
        // Type-1 header on an unknown csid: an error, identical for every split.
        chunk(&[0, 0x43, 0, 0, 0, 0, 0, 1, 8, 0xaa]);
    }

    #[test]
    fn fuzz_chunk_on_a_publish_like_stream() {
        let messages = [
            raw(2, 0, 1, &200u32.to_be_bytes()),
            raw(
                3,
                0,
                20,
                &hex::decode("0200077075626c69736800000000000000000005").unwrap(),
            ),
            raw(6, 0xFF_FFF0, 9, &[0x17; 300]),
            raw(6, 0x0100_0010, 9, &[0x27; 500]),
            raw(4, 0xFFFF_FFF0, 8, &[0xaf; 10]),
            raw(4, 0x10, 8, &[0xaf; 10]),
            raw(
                5,
                7,
                22,
                &hex::decode("09000002000010010000051701 0000000d".replace(' ', "")).unwrap(),
            ),
            raw(2, 0, 2, &4u32.to_be_bytes()),
        ];
        let mut input = vec![0];
        input.extend(stream(&messages[..1], 128));
        // After Set Chunk Size 200 the rest of the stream uses 200-byte chunks.
        let mut encoder_bytes = stream(&messages[1..], 200);
        input.append(&mut encoder_bytes);
        chunk(&input);
        let (decoded, error) = run(128, &[&input[1..]]);
        assert_eq!(error, None);
        assert_eq!(decoded, messages);
    }

    #[test]
    fn fuzz_chunk_with_abort_and_standalone_chunks() {
        let big = raw(6, 0x0200_0000, 9, &[0x55; 700]);
        let mut input = vec![1]; // chunk size 1
        let standalone = encode_standalone(&big, 1);
        // The type-0 chunk (16 header bytes + 1) and three continuations (5 + 1 each).
        input.extend_from_slice(&standalone[..17 + 3 * 6]);
        input.extend(stream(&[raw(2, 0, 2, &6u32.to_be_bytes())], 1));
        input.extend_from_slice(&standalone);
        chunk(&input);
        let (decoded, error) = run(1, &[&input[1..]]);
        assert_eq!(error, None);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1], big);
    }

    proptest! {
        #[test]
        fn fuzz_chunk_never_fails_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
            chunk(&data);
        }
    }
}
