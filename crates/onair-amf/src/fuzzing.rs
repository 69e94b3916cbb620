//! Entry points for the cargo-fuzz targets in `fuzz/` (str0m's layout). Each asserts
//! invariants, not just "no panic"; a crash found by the fuzzer becomes a named regression test
//! in this crate.

use crate::{Decoder, MAX_REFERENCE_BYTES, Value, amf3, decode_all, encode_all};

/// Fuzz target `amf0`: decodes `data` as AMF0 values and as an RTMP AMF3 command payload.
///
/// Invariants asserted:
/// - every value the AMF0 decoder returns before its first error, and every value of a
///   successful command-payload decode, re-encodes as AMF0 (with `encoded_len` exact) and
///   decodes again to the same value (numbers compared bit for bit, so NaN payloads count);
/// - after an error the decoder's remaining bytes are a suffix of the input;
/// - the decoded values are never much larger than the input plus the reference budget.
pub fn amf0(data: &[u8]) {
    let mut decoder = Decoder::new(data);
    let mut values = Vec::new();
    loop {
        match decoder.next_value() {
            Ok(Some(v)) => values.push(v),
            Ok(None) => break,
            Err(_) => {
                assert!(data.ends_with(decoder.remaining()));
                break;
            }
        }
    }
    check(data, &values);

    if let Ok(values) = amf3::decode_command_payload(data) {
        check(data, &values);
    }
}

fn check(data: &[u8], values: &[Value]) {
    // Each input byte yields at most a node and a few bytes of text (AMF3 mixed arrays name
    // their dense entries "0", "1", …; a ByteArray byte becomes up to two bytes of UTF-8), and
    // reference expansion re-reads at most MAX_REFERENCE_BYTES.
    let limit = 16 * (data.len() + MAX_REFERENCE_BYTES);
    let size: usize = values.iter().map(weight).sum();
    assert!(
        size <= limit,
        "{size} units decoded from {} bytes",
        data.len()
    );

    let encoded = encode_all(values);
    assert_eq!(
        encoded.len(),
        values.iter().map(Value::encoded_len).sum::<usize>()
    );
    let again = match decode_all(&encoded) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded values fail to decode: {e}"),
    };
    assert!(
        values.len() == again.len() && values.iter().zip(&again).all(|(a, b)| same(a, b)),
        "round trip changed {values:?} into {again:?}"
    );
}

/// Structural equality that compares numbers by their bits, so NaN equals itself.
pub fn same(a: &Value, b: &Value) -> bool {
    fn same_props(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (
            Value::Date {
                millis: x,
                timezone: tx,
            },
            Value::Date {
                millis: y,
                timezone: ty,
            },
        ) => x.to_bits() == y.to_bits() && tx == ty,
        (Value::Object(x), Value::Object(y)) | (Value::EcmaArray(x), Value::EcmaArray(y)) => {
            same_props(x, y)
        }
        (Value::StrictArray(x), Value::StrictArray(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (
            Value::TypedObject {
                class_name: cx,
                properties: px,
            },
            Value::TypedObject {
                class_name: cy,
                properties: py,
            },
        ) => cx == cy && same_props(px, py),
        _ => a == b,
    }
}

/// A proxy for the memory a value holds: one unit per node plus its text bytes.
pub fn weight(v: &Value) -> usize {
    1 + match v {
        Value::String(s) | Value::LongString(s) | Value::Xml(s) => s.len(),
        Value::Object(props) | Value::EcmaArray(props) => props_weight(props),
        Value::TypedObject {
            class_name,
            properties,
        } => class_name.len() + props_weight(properties),
        Value::StrictArray(items) => items.iter().map(weight).sum(),
        Value::Number(_)
        | Value::Boolean(_)
        | Value::Null
        | Value::Undefined
        | Value::Date { .. } => 0,
    }
}

fn props_weight(props: &[(String, Value)]) -> usize {
    props.iter().map(|(k, v)| k.len() + weight(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_point_runs_on_sample_inputs() {
        let samples: [&[u8]; 9] = [
            &[],
            &[0x00],
            &[0x05, 0x06, 0x01, 0x02],
            // A NaN with a payload must survive the round trip bit for bit.
            &[0x00, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34],
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, b'a', 0x05],
            &[
                0x0a, 0x00, 0x00, 0x00, 0x02, 0x03, 0x00, 0x00, 0x09, 0x07, 0x00, 0x01,
            ],
            &[
                0x00, 0x11, 0x09, 0x05, 0x03, b'k', 0x04, 0x01, 0x01, 0x06, 0x03, b'x', 0x0c, 0x03,
                0xff,
            ],
            &[0x11, 0x0a, 0x0b, 0x01, 0x03, b'a', 0x0a, 0x01, 0x01, 0x01],
            &[0x02, 0x00, 0x02, 0xc3, 0x28],
        ];
        for sample in samples {
            amf0(sample);
        }
    }

    #[test]
    fn same_treats_nan_bitwise() {
        let nan = Value::Number(f64::NAN);
        assert!(same(&nan, &nan.clone()));
        assert!(!same(&nan, &Value::Number(-f64::NAN)));
        assert!(!same(&Value::Number(0.0), &Value::Number(-0.0)));
        assert!(same(
            &Value::StrictArray(vec![nan.clone()]),
            &Value::StrictArray(vec![nan])
        ));
    }
}
