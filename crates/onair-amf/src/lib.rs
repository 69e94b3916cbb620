//! AMF0 encoding and decoding, plus the AMF3 subset RTMP needs, as plain functions over bytes
//! (no I/O, no clock).
//!
//! | format | follows | where |
//! | --- | --- | --- |
//! | AMF0 | Adobe *Action Message Format – AMF 0* (2006), §2 all type markers | [`Value`], [`Decoder`], [`Value::encode`] |
//! | AMF3 | Adobe *Action Message Format – AMF 3* (2013), §1.3 U29/strings, §3 all markers (decode only) | [`amf3`] |
//! | RTMP AMF3 messages | RTMP 1.0 §7.1.1 (types 15/17: format byte, AMF0 with 0x11 switches); Enhanced RTMP v2 "AMF3 clarification" (the switch is per value, not sticky) | [`amf3::decode_command_payload`] |
//!
//! Decoding is strict and bounded, because every byte comes from a peer:
//! - strings must be valid UTF-8 ([`DecodeError::InvalidUtf8`]), never replaced lossily, so
//!   stream names and keys are never silently altered and decoded values re-encode exactly;
//! - containers nest at most [`MAX_DEPTH`] deep;
//! - declared counts (ECMA array, strict array, AMF3 array/vector/traits) are hints: nothing is
//!   pre-allocated beyond what the remaining bytes could hold;
//! - references (AMF0 0x07, AMF3 object/string/traits) are resolved by decoding the referenced
//!   bytes again, charged against [`MAX_REFERENCE_BYTES`]; cycles are errors;
//! - movieclip, recordset, "unsupported" and AMF3 dictionaries/externalizable objects are errors;
//! - the one leniency: a top-level ECMA array may end at the end of the input without its
//!   object-end sequence, as FFmpeg's FLV reader allows.
//!
//! Encoding always produces AMF0: every RTMP client accepts AMF0 replies.
//!
//! ```
//! use onair_amf::{Decoder, Value, encode_all};
//!
//! // What OBS sends: connect(1, {app, tcUrl, ...}).
//! let connect = encode_all(&[
//!     Value::from("connect"),
//!     Value::Number(1.0),
//!     Value::object([("app", Value::from("live")), ("tcUrl", "rtmp://127.0.0.1/live".into())]),
//! ]);
//!
//! // What the server does with it.
//! let mut decoder = Decoder::new(&connect);
//! let name = decoder.next_value()?;
//! let transaction_id = decoder.next_value()?.and_then(|v| v.as_number());
//! let command_object = decoder.next_value()?;
//! assert_eq!(name.as_ref().and_then(Value::as_str), Some("connect"));
//! assert_eq!(transaction_id, Some(1.0));
//! let app = command_object.as_ref().and_then(|o| o.get("app")).and_then(Value::as_str);
//! assert_eq!(app, Some("live"));
//! assert!(decoder.remaining().is_empty());
//! # Ok::<(), onair_amf::DecodeError>(())
//! ```
#![deny(missing_docs)]

pub mod amf3;
mod decode;
mod encode;
// Under `test` too: the unit tests share its checkers, and must not rely on the dev-dependency
// through which Cargo.toml turns the feature on for the integration tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod value;

pub use decode::{DecodeError, Decoder, MAX_DEPTH, MAX_REFERENCE_BYTES, decode_all};
pub use encode::encode_all;
pub use value::Value;

/// AMF0 type markers (AMF0 spec §2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
    pub const UNSUPPORTED: u8 = 0x0d;
    pub const RECORDSET: u8 = 0x0e;
    pub const XML_DOCUMENT: u8 = 0x0f;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::same;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-zA-Z0-9@._]{1,12}", any::<String>()]
    }

    fn props(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<(String, Value)>> {
        prop::collection::vec((text(), inner), 0..5)
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_map(Value::Number),
            any::<u64>().prop_map(|bits| Value::Number(f64::from_bits(bits))),
            any::<bool>().prop_map(Value::Boolean),
            text().prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            (any::<f64>(), any::<i16>())
                .prop_map(|(millis, timezone)| Value::Date { millis, timezone }),
            text().prop_map(Value::LongString),
            text().prop_map(Value::Xml),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let inner = inner.boxed();
            prop_oneof![
                props(inner.clone()).prop_map(Value::Object),
                props(inner.clone()).prop_map(Value::EcmaArray),
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::StrictArray),
                (text(), props(inner)).prop_map(|(class_name, properties)| {
                    Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_round_trips(values in prop::collection::vec(value(), 0..4)) {
            let bytes = encode_all(&values);
            prop_assert_eq!(bytes.len(), values.iter().map(Value::encoded_len).sum::<usize>());
            let decoded = decode_all(&bytes).expect("our own encoding decodes");
            prop_assert_eq!(decoded.len(), values.len());
            for (a, b) in values.iter().zip(&decoded) {
                prop_assert!(same(a, b), "{:?} != {:?}", a, b);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_stays_bounded(
            data in prop::collection::vec(any::<u8>(), 0..256)
        ) {
            fuzzing::amf0(&data);
        }

        #[test]
        fn decoding_marker_heavy_bytes_never_panics_and_stays_bounded(
            data in prop::collection::vec(prop_oneof![0u8..0x13, any::<u8>()], 0..256)
        ) {
            // Bytes biased to valid markers and small lengths reach deep into both decoders;
            // the avmplus prefix sends them through AMF3.
            fuzzing::amf0(&data);
            let mut amf3 = vec![0x00, 0x11];
            amf3.extend_from_slice(&data);
            fuzzing::amf0(&amf3);
        }

        #[test]
        fn decoding_mutated_valid_input_keeps_the_invariants(
            values in prop::collection::vec(value(), 1..3),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode_all(&values).to_vec();
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            fuzzing::amf0(&bytes);
            let mut with_format_byte = vec![0];
            with_format_byte.extend_from_slice(&bytes);
            fuzzing::amf0(&with_format_byte);
        }

        #[test]
        fn a_cut_value_sequence_decodes_to_an_error_or_a_prefix(
            values in prop::collection::vec(value(), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = encode_all(&values);
            let cut = cut.index(bytes.len());
            let mut decoder = Decoder::new(&bytes[..cut]);
            let mut n = 0;
            while let Ok(Some(v)) = decoder.next_value() {
                prop_assert!(n < values.len());
                // A top-level ECMA array may end at the end of the input without its
                // object-end sequence, so if the cut falls in one it may decode, shortened.
                let at_cut = decoder.remaining().is_empty();
                prop_assert!(same(&v, &values[n]) || (at_cut && matches!(v, Value::EcmaArray(_))));
                n += 1;
            }
        }
    }

    #[test]
    fn long_strings_come_back_as_long_strings() {
        let s = "ü".repeat(40_000);
        let decoded = decode_all(&encode_all(&[Value::String(s.clone())])).unwrap();
        assert_eq!(decoded, vec![Value::LongString(s)]);
    }
}
