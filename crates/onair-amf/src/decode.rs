//! AMF0 decoding (AMF0 spec §2), with the avmplus switch into [`crate::amf3`].

use crate::{Value, amf3, marker};

/// How many containers (objects, arrays) may nest inside one another. Real RTMP traffic nests
/// two or three levels; the bound keeps recursion and drop depth small for hostile input.
pub const MAX_DEPTH: usize = 64;

/// How many input bytes a [`Decoder`] will decode again to expand references (AMF0 0x07, AMF3
/// object/string/traits references) over its lifetime. Without a bound, a few hundred bytes of
/// references to references expand into gigabytes ("billion laughs").
pub const MAX_REFERENCE_BYTES: usize = 1 << 20;

/// Why decoding failed. Offsets are byte positions in the buffer given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("input ends at offset {offset}: {needed} more byte(s) needed")]
    UnexpectedEnd {
        /// Where the missing bytes would start.
        offset: usize,
        /// How many more bytes the value needs (at least).
        needed: usize,
    },
    /// An AMF0 type marker that the spec does not define.
    #[error("unknown AMF0 marker 0x{marker:02x} at offset {offset}")]
    UnknownMarker {
        /// The marker byte.
        marker: u8,
        /// Where it was.
        offset: usize,
    },
    /// An AMF3 type marker that the spec does not define.
    #[error("unknown AMF3 marker 0x{marker:02x} at offset {offset}")]
    UnknownAmf3Marker {
        /// The marker byte.
        marker: u8,
        /// Where it was.
        offset: usize,
    },
    /// A marker the spec defines but reserves or marks unsupported: AMF0 movieclip (0x04),
    /// unsupported (0x0D), recordset (0x0E); AMF3 dictionary (0x11).
    #[error("unsupported AMF marker 0x{marker:02x} at offset {offset}")]
    UnsupportedMarker {
        /// The marker byte.
        marker: u8,
        /// Where it was.
        offset: usize,
    },
    /// An object-end marker (0x09) where a value was expected.
    #[error("object-end marker at offset {offset} outside an object")]
    UnexpectedObjectEnd {
        /// Where it was.
        offset: usize,
    },
    /// Containers nested deeper than [`MAX_DEPTH`].
    #[error("containers nest deeper than {limit} at offset {offset}")]
    TooDeep {
        /// Where the container that went too deep starts.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// A string is not valid UTF-8. The decoder is strict rather than lossy so that what it
    /// returns re-encodes to the same bytes, and so that stream keys and names are never
    /// silently altered.
    #[error("invalid UTF-8 at offset {offset}")]
    InvalidUtf8 {
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// An AMF3 property or class name longer than the 65 535 bytes an AMF0 name can hold; it
    /// is refused so that every decoded value can be re-encoded as AMF0 unchanged.
    #[error("name of {len} bytes at offset {offset} exceeds {limit}")]
    TooLong {
        /// Where the name starts.
        offset: usize,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A reference to a table entry that does not exist (yet).
    #[error("reference to {table} entry {index} at offset {offset}, but the table holds {len}")]
    BadReference {
        /// Which table: `"object"` (AMF0 and AMF3), `"string"` or `"traits"` (AMF3).
        table: &'static str,
        /// The index sent.
        index: u32,
        /// How many entries the table held.
        len: usize,
        /// Where the reference was.
        offset: usize,
    },
    /// A reference to a container that is still being decoded (a cycle), which the tree-shaped
    /// [`Value`] cannot represent.
    #[error("cyclic reference to object {index} at offset {offset}")]
    CyclicReference {
        /// The index sent.
        index: u32,
        /// Where the reference was.
        offset: usize,
    },
    /// Expanding references would decode more than [`MAX_REFERENCE_BYTES`] again.
    #[error("reference at offset {offset} exceeds the expansion budget of {limit} bytes")]
    ReferenceBudgetExceeded {
        /// Where the reference was.
        offset: usize,
        /// The budget.
        limit: usize,
    },
    /// An AMF3 externalizable object: its body is class-specific and cannot be skipped.
    #[error("externalizable AMF3 object of class {class_name:?} at offset {offset}")]
    UnsupportedExternalizable {
        /// The class alias.
        class_name: String,
        /// Where the object starts.
        offset: usize,
    },
}

/// A byte cursor over the whole input; every read is bounds-checked and reports absolute
/// offsets.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    /// Invariant: `pos <= buf.len()`.
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.remaining();
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: n - rest.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        self.array().map(f64::from_be_bytes)
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.remaining().first().copied()
    }

    /// `len` bytes of UTF-8.
    pub(crate) fn utf8(&mut self, len: usize) -> Result<String, DecodeError> {
        let start = self.pos;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                offset: start + e.valid_up_to(),
            }),
        }
    }

    /// The text of bytes `start..end` that were validated as UTF-8 when first read.
    pub(crate) fn utf8_at(&self, start: usize, end: usize) -> Result<String, DecodeError> {
        let mut again = Cursor::new(self.buf, start);
        again.utf8(end.saturating_sub(start))
    }

    /// How many more elements at least `min_size` bytes each the input could still hold:
    /// the most a declared count may pre-allocate.
    pub(crate) fn capacity_for(&self, declared: u64, min_size: usize) -> usize {
        let fits = self.remaining().len() / min_size.max(1);
        usize::try_from(declared).map_or(fits, |d| d.min(fits))
    }
}

/// Checks the nesting bound before entering a container that starts at `offset`.
pub(crate) fn enter(depth: usize, offset: usize) -> Result<usize, DecodeError> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            offset,
            limit: MAX_DEPTH,
        });
    }
    Ok(depth + 1)
}

/// Charges `bytes` of re-decoding against the reference budget.
pub(crate) fn charge(spent: &mut usize, bytes: usize, offset: usize) -> Result<(), DecodeError> {
    *spent = spent.saturating_add(bytes);
    if *spent > MAX_REFERENCE_BYTES {
        return Err(DecodeError::ReferenceBudgetExceeded {
            offset,
            limit: MAX_REFERENCE_BYTES,
        });
    }
    Ok(())
}

/// A complex value in a reference table: where its encoding starts (at its marker) and,
/// once decoded, ends. References are resolved by decoding that span again, so the common
/// case (no references) never clones a value just in case it is referenced later.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: Option<usize>,
}

/// Decodes AMF0 values one at a time from a byte slice.
///
/// Complex values (objects, typed objects, ECMA and strict arrays) are numbered in the order
/// they start, across all values of this decoder, for the reference marker 0x07 (AMF0 spec
/// §2.9). Each avmplus value (0x11) starts fresh AMF3 reference tables, because RTMP switches to
/// AMF3 for one value at a time (Enhanced RTMP v2, "AMF3 clarification").
///
/// ```
/// use onair_amf::{Decoder, Value};
/// let mut decoder = Decoder::new(&[0x05, 0x01, 0x01]);
/// assert_eq!(decoder.next_value(), Ok(Some(Value::Null)));
/// assert_eq!(decoder.next_value(), Ok(Some(Value::Boolean(true))));
/// assert_eq!(decoder.next_value(), Ok(None));
/// ```
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    cur: Cursor<'a>,
    objects: Vec<Span>,
    /// Bytes decoded again to expand references so far.
    expanded: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder reading `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::at(buf, 0)
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Decoder {
            cur: Cursor::new(buf, pos),
            objects: Vec::new(),
            expanded: 0,
        }
    }

    /// The next value, or `None` when the input is exhausted.
    ///
    /// On error the decoder stays at the start of the value that failed, so
    /// [`Decoder::remaining`] shows the bytes it could not decode.
    pub fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        if self.cur.remaining().is_empty() {
            return Ok(None);
        }
        let start = self.cur.pos;
        let known = self.objects.len();
        match self.value(0, true) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                self.cur.pos = start;
                self.objects.truncate(known);
                Err(e)
            }
        }
    }

    /// The bytes not yet decoded.
    pub fn remaining(&self) -> &'a [u8] {
        self.cur.remaining()
    }

    /// Decodes one value. `register` is false while a reference is being expanded: the
    /// containers inside were numbered when first decoded.
    fn value(&mut self, depth: usize, register: bool) -> Result<Value, DecodeError> {
        let offset = self.cur.pos;
        let m = self.cur.u8()?;
        Ok(match m {
            marker::NUMBER => Value::Number(self.cur.f64()?),
            marker::BOOLEAN => Value::Boolean(self.cur.u8()? != 0),
            marker::STRING => Value::String(self.short_string()?),
            marker::OBJECT => {
                let inner = enter(depth, offset)?;
                let slot = self.register(offset, register);
                let props = self.properties(inner, register, false)?;
                self.complete(slot);
                Value::Object(props)
            }
            marker::NULL => Value::Null,
            marker::UNDEFINED => Value::Undefined,
            marker::REFERENCE => self.reference(offset, depth)?,
            marker::ECMA_ARRAY => {
                // The count is only a hint (AMF0 spec §2.10): encoders disagree on it, and the
                // object-end marker is what terminates the array.
                let _count = self.cur.u32()?;
                let inner = enter(depth, offset)?;
                let slot = self.register(offset, register);
                let props = self.properties(inner, register, depth == 0)?;
                self.complete(slot);
                Value::EcmaArray(props)
            }
            marker::OBJECT_END => return Err(DecodeError::UnexpectedObjectEnd { offset }),
            marker::STRICT_ARRAY => {
                let count = self.cur.u32()?;
                let inner = enter(depth, offset)?;
                let slot = self.register(offset, register);
                // Every value takes at least its marker byte.
                let mut items = Vec::with_capacity(self.cur.capacity_for(count.into(), 1));
                for _ in 0..count {
                    items.push(self.value(inner, register)?);
                }
                self.complete(slot);
                Value::StrictArray(items)
            }
            marker::DATE => Value::Date {
                millis: self.cur.f64()?,
                timezone: self.cur.i16()?,
            },
            marker::LONG_STRING => Value::LongString(self.long_string()?),
            marker::XML_DOCUMENT => Value::Xml(self.long_string()?),
            marker::TYPED_OBJECT => {
                let inner = enter(depth, offset)?;
                let slot = self.register(offset, register);
                let class_name = self.short_string()?;
                let properties = self.properties(inner, register, false)?;
                self.complete(slot);
                Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::AVMPLUS => amf3::decode_in(&mut self.cur, &mut self.expanded, depth)?,
            marker::MOVIECLIP | marker::UNSUPPORTED | marker::RECORDSET => {
                return Err(DecodeError::UnsupportedMarker { marker: m, offset });
            }
            _ => return Err(DecodeError::UnknownMarker { marker: m, offset }),
        })
    }

    fn short_string(&mut self) -> Result<String, DecodeError> {
        let len = self.cur.u16()?;
        self.cur.utf8(len.into())
    }

    fn long_string(&mut self) -> Result<String, DecodeError> {
        let len = self.cur.u32()?;
        // A u32 always fits the usize of the 32- and 64-bit targets we build for; if it did
        // not, the input could not hold that many bytes anyway.
        self.cur.utf8(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// Properties up to the object-end sequence `00 00 09` (AMF0 spec §2.5, §2.11). An empty
    /// name followed by any other marker is an ordinary property named "".
    fn properties(
        &mut self,
        depth: usize,
        register: bool,
        end_optional_at_eof: bool,
    ) -> Result<Vec<(String, Value)>, DecodeError> {
        let mut props = Vec::new();
        loop {
            // Some encoders end a top-level ECMA array (onMetaData) at the end of the buffer
            // without the object-end sequence, and FFmpeg's reader accepts that; so do we, but
            // only for a top-level ECMA array, so a cut inside any other value stays an error.
            if end_optional_at_eof && self.cur.remaining().is_empty() {
                return Ok(props);
            }
            let key = self.short_string()?;
            if key.is_empty() && self.cur.peek() == Some(marker::OBJECT_END) {
                self.cur.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth, register)?;
            props.push((key, value));
        }
    }

    fn register(&mut self, start: usize, register: bool) -> Option<usize> {
        register.then(|| {
            self.objects.push(Span { start, end: None });
            self.objects.len() - 1
        })
    }

    fn complete(&mut self, slot: Option<usize>) {
        if let Some(entry) = slot.and_then(|i| self.objects.get_mut(i)) {
            entry.end = Some(self.cur.pos);
        }
    }

    /// Resolves reference marker 0x07 (AMF0 spec §2.9): a u16 index into the complex values
    /// decoded so far, expanded by decoding that value's bytes again.
    fn reference(&mut self, offset: usize, depth: usize) -> Result<Value, DecodeError> {
        let index = self.cur.u16()?;
        let resume = self.cur.pos;
        let entry =
            self.objects
                .get(usize::from(index))
                .copied()
                .ok_or(DecodeError::BadReference {
                    table: "object",
                    index: index.into(),
                    len: self.objects.len(),
                    offset,
                })?;
        let Some(end) = entry.end else {
            return Err(DecodeError::CyclicReference {
                index: index.into(),
                offset,
            });
        };
        charge(&mut self.expanded, end - entry.start, offset)?;
        self.cur.pos = entry.start;
        let value = self.value(depth, false);
        self.cur.pos = resume;
        value
    }
}

/// Decodes every AMF0 value in `buf`.
///
/// ```
/// use onair_amf::{Value, decode_all};
/// assert_eq!(decode_all(&[0x05, 0x06]), Ok(vec![Value::Null, Value::Undefined]));
/// ```
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut decoder = Decoder::new(buf);
    let mut values = Vec::new();
    while let Some(v) = decoder.next_value()? {
        values.push(v);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_all;

    fn hex(s: &str) -> Vec<u8> {
        let clean: String = s.split_whitespace().collect();
        hex::decode(clean).expect("test vector is valid hex")
    }

    fn decode_hex(s: &str) -> Result<Vec<Value>, DecodeError> {
        decode_all(&hex(s))
    }

    /// The `connect` command FFmpeg and OBS send (RTMP §7.2.1.1), trimmed to the properties
    /// the server reads.
    const CONNECT: &str = "
        02 0007 636f6e6e656374
        00 3ff0000000000000
        03
          0003 617070 02 0004 6c697665
          0004 74797065 02 000a 6e6f6e70726976617465
          0008 666c617368566572 02 001f 464d4c452f332e302028636f6d70617469626c653b20464d53632f312e3029
          0005 746355726c 02 0015 72746d703a2f2f3132372e302e302e312f6c697665
        000009";

    #[test]
    fn connect_command_as_obs_sends_it() {
        let values = decode_hex(CONNECT).unwrap();
        assert_eq!(
            values,
            vec![
                Value::from("connect"),
                Value::Number(1.0),
                Value::object([
                    ("app", Value::from("live")),
                    ("type", "nonprivate".into()),
                    ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)".into()),
                    ("tcUrl", "rtmp://127.0.0.1/live".into()),
                ]),
            ]
        );
        assert_eq!(encode_all(&values).as_ref(), hex(CONNECT).as_slice());
    }

    const ON_METADATA: &str = "
        02 000a 6f6e4d65746144617461
        08 00000004
          0005 7769647468 00 4094000000000000
          0006 686569676874 00 4086800000000000
          0009 6672616d6572617465 00 403e000000000000
          0007 656e636f646572 02 000d 4c61766636302e31362e313030
        000009";

    #[test]
    fn on_metadata_ecma_array_as_ffmpeg_sends_it() {
        let values = decode_hex(ON_METADATA).unwrap();
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        let meta = &values[1];
        assert!(matches!(meta, Value::EcmaArray(p) if p.len() == 4));
        assert_eq!(meta.get("width").and_then(Value::as_number), Some(1280.0));
        assert_eq!(meta.get("height").and_then(Value::as_number), Some(720.0));
        assert_eq!(meta.get("framerate").and_then(Value::as_number), Some(30.0));
        assert_eq!(
            meta.get("encoder").and_then(Value::as_str),
            Some("Lavf60.16.100")
        );
        assert_eq!(encode_all(&values).as_ref(), hex(ON_METADATA).as_slice());
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        // Declares 0xFFFFFFFF entries but holds one: no pre-allocation, no error.
        let v = decode_hex("08 ffffffff 0001 61 05 000009").unwrap();
        assert_eq!(v, vec![Value::EcmaArray(vec![("a".into(), Value::Null)])]);
        // Declares none but holds one.
        let v = decode_hex("08 00000000 0001 61 05 000009").unwrap();
        assert_eq!(v, vec![Value::EcmaArray(vec![("a".into(), Value::Null)])]);
        // Missing object-end at the end of the buffer is tolerated for top-level ECMA arrays
        // only.
        let v = decode_hex("08 00000001 0001 61 05").unwrap();
        assert_eq!(v, vec![Value::EcmaArray(vec![("a".into(), Value::Null)])]);
        assert!(matches!(
            decode_hex("0a 00000001 08 00000001 0001 61 05"),
            Err(DecodeError::UnexpectedEnd { offset: 14, .. })
        ));
        assert!(matches!(
            decode_hex("03 0001 61 05"),
            Err(DecodeError::UnexpectedEnd { offset: 5, .. })
        ));
    }

    #[test]
    fn strict_array_fourcc_list_from_enhanced_rtmp_connect() {
        let bytes = "0a 00000002 02 0004 68766331 02 0004 61763031";
        assert_eq!(
            decode_hex(bytes).unwrap(),
            vec![Value::StrictArray(vec!["hvc1".into(), "av01".into()])]
        );
        assert_eq!(
            encode_all(&decode_hex(bytes).unwrap()).as_ref(),
            hex(bytes).as_slice()
        );
    }

    #[test]
    fn huge_declared_counts_allocate_nothing_up_front() {
        assert_eq!(
            decode_hex("0a ffffffff 05"),
            Err(DecodeError::UnexpectedEnd {
                offset: 6,
                needed: 1
            })
        );
        assert!(matches!(
            decode_hex("0c ffffffff 61"),
            Err(DecodeError::UnexpectedEnd { offset: 5, .. })
        ));
    }

    #[test]
    fn date_typed_object_long_string_and_xml() {
        let values = decode_hex(
            "0b 4272d3edfa400000 0000
             10 0003 466f6f 0001 78 01 00 000009
             0c 00000002 6869
             0f 00000004 3c612f3e",
        )
        .unwrap();
        assert_eq!(
            values,
            vec![
                Value::Date {
                    millis: 1_293_840_000_000.0,
                    timezone: 0
                },
                Value::TypedObject {
                    class_name: "Foo".into(),
                    properties: vec![("x".into(), Value::Boolean(false))]
                },
                Value::LongString("hi".into()),
                Value::Xml("<a/>".into()),
            ]
        );
    }

    #[test]
    fn empty_key_with_a_value_is_a_property_not_the_end() {
        let v = decode_hex("03 0000 05 000009").unwrap();
        assert_eq!(v, vec![Value::object([("", Value::Null)])]);
    }

    #[test]
    fn references_resolve_to_earlier_complex_values() {
        // [ {a: 1}, ref 1 ] : the strict array is complex value 0, the object is 1.
        let v = decode_hex("0a 00000002 03 0001 61 00 3ff0000000000000 000009 07 0001").unwrap();
        let obj = Value::object([("a", Value::Number(1.0))]);
        assert_eq!(v, vec![Value::StrictArray(vec![obj.clone(), obj])]);
        // References also reach across the values of one decoder (a command's arguments).
        let v = decode_hex("03 000009 07 0000").unwrap();
        assert_eq!(v, vec![Value::Object(vec![]), Value::Object(vec![])]);
    }

    #[test]
    fn bad_and_cyclic_references_are_errors() {
        assert_eq!(
            decode_hex("07 0000"),
            Err(DecodeError::BadReference {
                table: "object",
                index: 0,
                len: 0,
                offset: 0
            })
        );
        assert_eq!(
            decode_hex("03 0001 61 07 0000 000009"),
            Err(DecodeError::CyclicReference {
                index: 0,
                offset: 4
            })
        );
    }

    #[test]
    fn reference_expansion_is_bounded() {
        // Array k holds two references to array k-1: 40 levels expand to 2^40 nodes.
        let mut bytes = hex("0a 00000000");
        for k in 0u16..40 {
            bytes.extend_from_slice(&[0x0a, 0, 0, 0, 2, 0x07]);
            bytes.extend_from_slice(&k.to_be_bytes());
            bytes.push(0x07);
            bytes.extend_from_slice(&k.to_be_bytes());
        }
        assert!(matches!(
            decode_all(&bytes),
            Err(DecodeError::ReferenceBudgetExceeded { .. })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut ok = [0x0a, 0, 0, 0, 1].repeat(MAX_DEPTH);
        ok.push(0x05);
        assert!(decode_all(&ok).is_ok());
        let mut deep = [0x0a, 0, 0, 0, 1].repeat(MAX_DEPTH + 1);
        deep.push(0x05);
        assert_eq!(
            decode_all(&deep),
            Err(DecodeError::TooDeep {
                offset: MAX_DEPTH * 5,
                limit: MAX_DEPTH
            })
        );
    }

    #[test]
    fn markers_without_a_value_are_typed_errors() {
        for (m, unsupported) in [
            (0x04, true),
            (0x0d, true),
            (0x0e, true),
            (0x12, false),
            (0xff, false),
        ] {
            let err = decode_all(&[0x05, m]).unwrap_err();
            if unsupported {
                assert_eq!(
                    err,
                    DecodeError::UnsupportedMarker {
                        marker: m,
                        offset: 1
                    }
                );
            } else {
                assert_eq!(
                    err,
                    DecodeError::UnknownMarker {
                        marker: m,
                        offset: 1
                    }
                );
            }
        }
        assert_eq!(
            decode_all(&[0x09]),
            Err(DecodeError::UnexpectedObjectEnd { offset: 0 })
        );
    }

    #[test]
    fn invalid_utf8_reports_the_offset_of_the_bad_byte() {
        assert_eq!(
            decode_hex("02 0003 61 ff 62"),
            Err(DecodeError::InvalidUtf8 { offset: 4 })
        );
    }

    #[test]
    fn errors_leave_the_decoder_at_the_failed_value() {
        let bytes = hex("05 02 0005 6162");
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.next_value(), Ok(Some(Value::Null)));
        assert!(d.next_value().is_err());
        assert_eq!(d.remaining(), &bytes[1..]);
    }

    #[test]
    fn avmplus_switches_to_amf3_for_one_value() {
        // AMF3 integer 5, then AMF0 null.
        assert_eq!(
            decode_hex("11 04 05 05").unwrap(),
            vec![Value::Number(5.0), Value::Null]
        );
    }
}
