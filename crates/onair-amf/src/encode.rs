//! AMF0 encoding (AMF0 spec §2). The encoder never writes references, so every value is
//! self-contained; AMF3 encoding is not needed by RTMP servers because every client accepts
//! AMF0 replies.

use bytes::Bytes;

use crate::Value;
use crate::marker;

/// The largest length an AMF0 `UTF-8` (u16 length) field can hold.
const SHORT_MAX: usize = u16::MAX as usize;
/// The largest length an AMF0 `UTF-8-long` (u32 length) field can hold.
const LONG_MAX: usize = u32::MAX as usize;

impl Value {
    /// Appends the AMF0 encoding of `self` to `out`.
    ///
    /// AMF0 has no way to carry some values exactly, so the encoder chooses:
    /// - a [`Value::String`] longer than 65 535 bytes is written as a long string (0x0C);
    /// - property names and class names longer than 65 535 bytes (the u16 length field) are
    ///   cut at the last UTF-8 character boundary that fits;
    /// - long strings and XML over 4 GiB are cut the same way at the u32 limit, and a strict
    ///   array keeps at most `u32::MAX` elements.
    ///
    /// None of these limits can be reached by a value this crate decoded.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write(out);
    }

    /// The number of bytes [`Value::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Value::Number(_) => 8,
            Value::Boolean(_) => 1,
            Value::String(s) if s.len() <= SHORT_MAX => 2 + s.len(),
            Value::String(s) | Value::LongString(s) | Value::Xml(s) => 4 + fit(s, LONG_MAX).len(),
            Value::Object(props) => properties_len(props),
            Value::Null | Value::Undefined => 0,
            Value::EcmaArray(props) => 4 + properties_len(props),
            Value::StrictArray(items) => {
                4 + items
                    .iter()
                    .take(LONG_MAX)
                    .map(Value::encoded_len)
                    .sum::<usize>()
            }
            Value::Date { .. } => 8 + 2,
            Value::TypedObject {
                class_name,
                properties,
            } => 2 + fit(class_name, SHORT_MAX).len() + properties_len(properties),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Number(n) => {
                out.push(marker::NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::Boolean(b) => out.extend_from_slice(&[marker::BOOLEAN, u8::from(*b)]),
            Value::String(s) if s.len() <= SHORT_MAX => {
                out.push(marker::STRING);
                write_short(out, s);
            }
            Value::String(s) | Value::LongString(s) => {
                out.push(marker::LONG_STRING);
                write_long(out, s);
            }
            Value::Object(props) => {
                out.push(marker::OBJECT);
                write_properties(out, props);
            }
            Value::Null => out.push(marker::NULL),
            Value::Undefined => out.push(marker::UNDEFINED),
            Value::EcmaArray(props) => {
                out.push(marker::ECMA_ARRAY);
                // The count is only a hint to readers (AMF0 spec §2.10); saturating keeps it
                // honest for any realistic array.
                out.extend_from_slice(
                    &u32::try_from(props.len()).unwrap_or(u32::MAX).to_be_bytes(),
                );
                write_properties(out, props);
            }
            Value::StrictArray(items) => {
                out.push(marker::STRICT_ARRAY);
                let count = items.len().min(LONG_MAX);
                // `count <= u32::MAX` by the `min` above.
                out.extend_from_slice(&(count as u32).to_be_bytes());
                for item in items.iter().take(count) {
                    item.write(out);
                }
            }
            Value::Date { millis, timezone } => {
                out.push(marker::DATE);
                out.extend_from_slice(&millis.to_be_bytes());
                out.extend_from_slice(&timezone.to_be_bytes());
            }
            Value::Xml(s) => {
                out.push(marker::XML_DOCUMENT);
                write_long(out, s);
            }
            Value::TypedObject {
                class_name,
                properties,
            } => {
                out.push(marker::TYPED_OBJECT);
                write_short(out, class_name);
                write_properties(out, properties);
            }
        }
    }
}

/// Encodes `values` back to back, as RTMP command and data messages carry them.
///
/// ```
/// use onair_amf::{Value, encode_all};
/// let bytes = encode_all(&[Value::from("onStatus"), Value::Number(0.0), Value::Null]);
/// assert_eq!(bytes.len(), 11 + 9 + 1);
/// ```
pub fn encode_all(values: &[Value]) -> Bytes {
    let mut out = Vec::with_capacity(values.iter().map(Value::encoded_len).sum());
    for value in values {
        value.write(&mut out);
    }
    Bytes::from(out)
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
fn fit(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn write_short(out: &mut Vec<u8>, s: &str) {
    let s = fit(s, SHORT_MAX);
    // `fit` bounds the length by u16::MAX.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_long(out: &mut Vec<u8>, s: &str) {
    let s = fit(s, LONG_MAX);
    // `fit` bounds the length by u32::MAX.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn properties_len(props: &[(String, Value)]) -> usize {
    props
        .iter()
        .map(|(k, v)| 2 + fit(k, SHORT_MAX).len() + v.encoded_len())
        .sum::<usize>()
        + 3
}

fn write_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (key, value) in props {
        write_short(out, key);
        value.write(out);
    }
    // object-end: an empty UTF-8 name followed by the object-end marker (AMF0 spec §2.11).
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(v: &Value) -> String {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out.len(), v.encoded_len(), "encoded_len of {v:?}");
        hex::encode(out)
    }

    #[test]
    fn scalars_encode_per_amf0_spec() {
        assert_eq!(hex_of(&Value::Number(1.0)), "003ff0000000000000");
        assert_eq!(hex_of(&Value::Boolean(true)), "0101");
        assert_eq!(hex_of(&Value::from("ab")), "0200026162");
        assert_eq!(hex_of(&Value::Null), "05");
        assert_eq!(hex_of(&Value::Undefined), "06");
        assert_eq!(
            hex_of(&Value::Date {
                millis: 0.0,
                timezone: -1
            }),
            "0b0000000000000000ffff"
        );
        assert_eq!(hex_of(&Value::LongString("a".into())), "0c0000000161");
        assert_eq!(hex_of(&Value::Xml("<a/>".into())), "0f000000043c612f3e");
    }

    #[test]
    fn containers_end_with_object_end() {
        assert_eq!(
            hex_of(&Value::object([("a", Value::Null)])),
            "03000161".to_owned() + "05" + "000009"
        );
        assert_eq!(hex_of(&Value::EcmaArray(vec![])), "0800000000000009");
        assert_eq!(
            hex_of(&Value::StrictArray(vec![Value::Null, Value::Undefined])),
            "0a000000020506"
        );
        assert_eq!(
            hex_of(&Value::TypedObject {
                class_name: "C".into(),
                properties: vec![]
            }),
            "10000143000009"
        );
    }

    #[test]
    fn long_strings_switch_marker_and_long_keys_are_cut_on_a_char_boundary() {
        let long = "x".repeat(70_000);
        let mut out = Vec::new();
        Value::String(long.clone()).encode(&mut out);
        assert_eq!(out[0], marker::LONG_STRING);
        assert_eq!(out.len(), 1 + 4 + 70_000);

        // 'é' is two bytes: 32 768 of them are 65 536 bytes, one more than a key can hold.
        let key = "é".repeat(32_768);
        let v = Value::object([(key, Value::Null)]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out.len(), v.encoded_len());
        assert_eq!(&out[1..3], &65_534u16.to_be_bytes());
    }
}
