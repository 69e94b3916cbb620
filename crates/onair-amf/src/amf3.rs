//! AMF3 decoding into the AMF0 [`Value`] model, and the payload of RTMP AMF3 messages.
//!
//! RTMP peers that negotiate `objectEncoding` 3 send command (17) and data (15) messages whose
//! payload is a format byte 0 followed by AMF0 values; any one value may be marker 0x11, which
//! switches to AMF3 for exactly that value (RTMP 1.0 §7.1.1, Enhanced RTMP v2 "AMF3
//! clarification"). [`decode_command_payload`] handles that; [`decode_value`] reads one bare
//! AMF3 value.
//!
//! # Mapping (AMF3 spec §3)
//!
//! | AMF3 | marker | [`Value`] |
//! | --- | --- | --- |
//! | undefined, null | 0x00, 0x01 | `Undefined`, `Null` |
//! | false, true | 0x02, 0x03 | `Boolean` |
//! | integer (U29, signed 29 bit), double | 0x04, 0x05 | `Number` |
//! | string | 0x06 | `String`, or `LongString` when over 65 535 bytes (what AMF0 would use) |
//! | xml-doc, xml | 0x07, 0x0B | `Xml` |
//! | date | 0x08 | `Date { millis, timezone: 0 }` |
//! | array, dense part only | 0x09 | `StrictArray` |
//! | array with associative part | 0x09 | `EcmaArray`: the named entries, then the dense ones named `"0"`, `"1"`, … |
//! | object, anonymous (sealed and dynamic members) | 0x0A | `Object` |
//! | object with a class name | 0x0A | `TypedObject` |
//! | object, externalizable | 0x0A | error [`DecodeError::UnsupportedExternalizable`] |
//! | ByteArray | 0x0C | `String`/`LongString` with one char U+0000–U+00FF per byte (Latin-1): lossless and never larger than twice the input |
//! | Vector.<int/uint/Number/Object> | 0x0D–0x10 | `StrictArray` |
//! | Dictionary | 0x11 | error [`DecodeError::UnsupportedMarker`] |
//!
//! References to strings, traits and objects are resolved against the tables of the
//! enclosing AMF3 value and count against [`crate::MAX_REFERENCE_BYTES`]; property and class
//! names over 65 535 bytes are refused ([`DecodeError::TooLong`]) so that every decoded value
//! re-encodes as AMF0 unchanged.

use std::rc::Rc;

use crate::decode::{Cursor, Span, charge, enter};
use crate::{DecodeError, Decoder, Value};

/// The longest name an AMF0 re-encoding can carry.
const NAME_MAX: usize = u16::MAX as usize;

/// Decodes one AMF3 value from the start of `buf` with fresh reference tables, returning it
/// and the number of bytes it took.
///
/// ```
/// use onair_amf::{Value, amf3};
/// // integer -1 (U29 0x1FFFFFFF)
/// assert_eq!(amf3::decode_value(&[0x04, 0xff, 0xff, 0xff, 0xff]), Ok((Value::Number(-1.0), 5)));
/// ```
pub fn decode_value(buf: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut cur = Cursor::new(buf, 0);
    let mut expanded = 0;
    let value = decode_in(&mut cur, &mut expanded, 0)?;
    Ok((value, cur.pos))
}

/// Decodes the payload of an RTMP AMF3 command (type 17) or data (type 15) message.
///
/// A leading 0x00 is taken as the format byte (RTMP 1.0 §7.1.1); payloads without it are
/// accepted too. The ambiguity with an AMF0 number is harmless in practice because commands and
/// data messages start with a string (the command or handler name). After that come AMF0
/// values, where marker 0x11 switches to AMF3 for one value.
///
/// ```
/// use onair_amf::{Value, amf3};
/// // format 0, AMF0 string "play", AMF0 number 0, AMF3 switch + AMF3 null
/// let payload = [0x00, 0x02, 0x00, 0x04, b'p', b'l', b'a', b'y', 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x01];
/// let values = amf3::decode_command_payload(&payload)?;
/// assert_eq!(values, [Value::from("play"), Value::Number(0.0), Value::Null]);
/// # Ok::<(), onair_amf::DecodeError>(())
/// ```
pub fn decode_command_payload(buf: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let start = usize::from(buf.first() == Some(&0));
    let mut decoder = Decoder::at(buf, start);
    let mut values = Vec::new();
    while let Some(v) = decoder.next_value()? {
        values.push(v);
    }
    Ok(values)
}

/// Decodes one AMF3 value at `cur` with fresh tables (one avmplus switch).
pub(crate) fn decode_in(
    cur: &mut Cursor<'_>,
    expanded: &mut usize,
    depth: usize,
) -> Result<Value, DecodeError> {
    Reader {
        cur,
        expanded,
        strings: Vec::new(),
        objects: Vec::new(),
        traits: Vec::new(),
    }
    .value(depth, true)
}

/// A class description (AMF3 spec §3.12).
#[derive(Debug)]
struct Traits {
    class_name: String,
    sealed: Vec<String>,
    dynamic: bool,
    /// The bytes a reference to these traits copies, charged to the reference budget.
    weight: usize,
}

/// The header of a referencable value: a table index, or an inline value with a length or
/// count (AMF3 spec §1.3.1 U29 with the low bit as the flag).
enum Header {
    Reference(u32),
    Inline(u32),
}

struct Reader<'c, 'a> {
    cur: &'c mut Cursor<'a>,
    expanded: &'c mut usize,
    /// Byte spans of the non-empty inline strings, in order.
    strings: Vec<(usize, usize)>,
    objects: Vec<Span>,
    traits: Vec<Rc<Traits>>,
}

impl Reader<'_, '_> {
    /// AMF3 spec §1.3.1: up to four bytes, seven bits each with a continuation flag, except the
    /// fourth which contributes all eight.
    fn u29(&mut self) -> Result<u32, DecodeError> {
        let mut v = 0u32;
        for _ in 0..3 {
            let b = self.cur.u8()?;
            if b & 0x80 == 0 {
                return Ok((v << 7) | u32::from(b));
            }
            v = (v << 7) | u32::from(b & 0x7f);
        }
        Ok((v << 8) | u32::from(self.cur.u8()?))
    }

    fn header(&mut self) -> Result<Header, DecodeError> {
        let h = self.u29()?;
        Ok(if h & 1 == 0 {
            Header::Reference(h >> 1)
        } else {
            Header::Inline(h >> 1)
        })
    }

    /// Decodes one value; `register` is false while a reference is being expanded, because
    /// everything inside was entered in the tables when first decoded.
    fn value(&mut self, depth: usize, register: bool) -> Result<Value, DecodeError> {
        let offset = self.cur.pos;
        let m = self.cur.u8()?;
        Ok(match m {
            0x00 => Value::Undefined,
            0x01 => Value::Null,
            0x02 => Value::Boolean(false),
            0x03 => Value::Boolean(true),
            0x04 => {
                let u = self.u29()?;
                // Sign-extend the 29-bit two's complement value (AMF3 spec §3.6).
                let i = if u & 0x1000_0000 != 0 {
                    u as i32 - 0x2000_0000
                } else {
                    u as i32
                };
                Value::Number(i.into())
            }
            0x05 => Value::Number(self.cur.f64()?),
            0x06 => text(self.string(register)?),
            0x07 | 0x0b => match self.header()? {
                Header::Reference(index) => self.object_reference(index, offset, depth)?,
                Header::Inline(len) => {
                    let xml = self.cur.utf8(len as usize)?;
                    self.register_leaf(offset, register);
                    Value::Xml(xml)
                }
            },
            0x08 => match self.header()? {
                Header::Reference(index) => self.object_reference(index, offset, depth)?,
                Header::Inline(_) => {
                    let millis = self.cur.f64()?;
                    self.register_leaf(offset, register);
                    Value::Date {
                        millis,
                        timezone: 0,
                    }
                }
            },
            0x09 => self.array(offset, depth, register)?,
            0x0a => self.object(offset, depth, register)?,
            0x0c => match self.header()? {
                Header::Reference(index) => self.object_reference(index, offset, depth)?,
                Header::Inline(len) => {
                    let bytes = self.cur.take(len as usize)?;
                    self.register_leaf(offset, register);
                    text(bytes.iter().copied().map(char::from).collect())
                }
            },
            0x0d..=0x10 => self.vector(m, offset, depth, register)?,
            0x11 => return Err(DecodeError::UnsupportedMarker { marker: m, offset }),
            _ => return Err(DecodeError::UnknownAmf3Marker { marker: m, offset }),
        })
    }

    /// A `UTF-8-vr` string (AMF3 spec §1.3.2): inline, or a reference into the string table,
    /// which holds every non-empty inline string.
    fn string(&mut self, register: bool) -> Result<String, DecodeError> {
        let offset = self.cur.pos;
        match self.header()? {
            Header::Reference(index) => {
                let &(start, end) =
                    self.strings
                        .get(index as usize)
                        .ok_or(DecodeError::BadReference {
                            table: "string",
                            index,
                            len: self.strings.len(),
                            offset,
                        })?;
                charge(self.expanded, end - start, offset)?;
                self.cur.utf8_at(start, end)
            }
            Header::Inline(len) => {
                let start = self.cur.pos;
                let s = self.cur.utf8(len as usize)?;
                if register && !s.is_empty() {
                    self.strings.push((start, self.cur.pos));
                }
                Ok(s)
            }
        }
    }

    /// A property or class name, which must fit an AMF0 name.
    fn name(&mut self, register: bool) -> Result<String, DecodeError> {
        let offset = self.cur.pos;
        let s = self.string(register)?;
        if s.len() > NAME_MAX {
            return Err(DecodeError::TooLong {
                offset,
                len: s.len(),
                limit: NAME_MAX,
            });
        }
        Ok(s)
    }

    fn register_leaf(&mut self, start: usize, register: bool) {
        if register {
            self.objects.push(Span {
                start,
                end: Some(self.cur.pos),
            });
        }
    }

    fn register_open(&mut self, start: usize, register: bool) -> Option<usize> {
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

    /// Expands an object-table reference by decoding the referenced value's bytes again.
    fn object_reference(
        &mut self,
        index: u32,
        offset: usize,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        let entry = self
            .objects
            .get(index as usize)
            .copied()
            .ok_or(DecodeError::BadReference {
                table: "object",
                index,
                len: self.objects.len(),
                offset,
            })?;
        let Some(end) = entry.end else {
            return Err(DecodeError::CyclicReference { index, offset });
        };
        charge(self.expanded, end - entry.start, offset)?;
        let resume = self.cur.pos;
        self.cur.pos = entry.start;
        let value = self.value(depth, false);
        self.cur.pos = resume;
        value
    }

    /// AMF3 spec §3.11: dense count, associative part up to an empty name, dense values.
    fn array(&mut self, offset: usize, depth: usize, register: bool) -> Result<Value, DecodeError> {
        let dense = match self.header()? {
            Header::Reference(index) => return self.object_reference(index, offset, depth),
            Header::Inline(dense) => dense,
        };
        let inner = enter(depth, offset)?;
        let slot = self.register_open(offset, register);
        let mut assoc = Vec::new();
        loop {
            let key = self.name(register)?;
            if key.is_empty() {
                break;
            }
            let value = self.value(inner, register)?;
            assoc.push((key, value));
        }
        // Every value takes at least its marker byte.
        let mut items = Vec::with_capacity(self.cur.capacity_for(dense.into(), 1));
        for _ in 0..dense {
            items.push(self.value(inner, register)?);
        }
        self.complete(slot);
        Ok(if assoc.is_empty() {
            Value::StrictArray(items)
        } else {
            assoc.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v)),
            );
            Value::EcmaArray(assoc)
        })
    }

    /// AMF3 spec §3.12: traits (inline or referenced), sealed values, dynamic members.
    fn object(
        &mut self,
        offset: usize,
        depth: usize,
        register: bool,
    ) -> Result<Value, DecodeError> {
        let header = self.u29()?;
        if header & 1 == 0 {
            return self.object_reference(header >> 1, offset, depth);
        }
        let inner = enter(depth, offset)?;
        let traits = if header & 0b10 == 0 {
            let index = header >> 2;
            let traits =
                self.traits
                    .get(index as usize)
                    .cloned()
                    .ok_or(DecodeError::BadReference {
                        table: "traits",
                        index,
                        len: self.traits.len(),
                        offset,
                    })?;
            charge(self.expanded, traits.weight, offset)?;
            traits
        } else if header & 0b100 != 0 {
            // Externalizable: the body is written by the class's own code and has no
            // self-describing length, so nothing after it could be read either.
            let class_name = self.name(register)?;
            return Err(DecodeError::UnsupportedExternalizable { class_name, offset });
        } else {
            let dynamic = header & 0b1000 != 0;
            let count = header >> 4;
            let class_name = self.name(register)?;
            let mut sealed = Vec::with_capacity(self.cur.capacity_for(count.into(), 1));
            for _ in 0..count {
                sealed.push(self.name(register)?);
            }
            let weight = class_name.len() + sealed.iter().map(|s| s.len() + 1).sum::<usize>();
            let traits = Rc::new(Traits {
                class_name,
                sealed,
                dynamic,
                weight,
            });
            if register {
                self.traits.push(Rc::clone(&traits));
            }
            traits
        };
        let slot = self.register_open(offset, register);
        let mut props = Vec::with_capacity(self.cur.capacity_for(traits.sealed.len() as u64, 1));
        for name in &traits.sealed {
            let value = self.value(inner, register)?;
            props.push((name.clone(), value));
        }
        if traits.dynamic {
            loop {
                let key = self.name(register)?;
                if key.is_empty() {
                    break;
                }
                let value = self.value(inner, register)?;
                props.push((key, value));
            }
        }
        self.complete(slot);
        Ok(if traits.class_name.is_empty() {
            Value::Object(props)
        } else {
            Value::TypedObject {
                class_name: traits.class_name.clone(),
                properties: props,
            }
        })
    }

    /// AMF3 spec §3.15: Vector.<int> 0x0D, Vector.<uint> 0x0E, Vector.<Number> 0x0F,
    /// Vector.<Object> 0x10 (with an element type name).
    fn vector(
        &mut self,
        m: u8,
        offset: usize,
        depth: usize,
        register: bool,
    ) -> Result<Value, DecodeError> {
        let count = match self.header()? {
            Header::Reference(index) => return self.object_reference(index, offset, depth),
            Header::Inline(count) => count,
        };
        let _fixed_length = self.cur.u8()?;
        if m == 0x10 {
            let _element_type = self.string(register)?;
        }
        let inner = enter(depth, offset)?;
        let slot = self.register_open(offset, register);
        let size = match m {
            0x0d | 0x0e => 4,
            0x0f => 8,
            _ => 1,
        };
        let mut items = Vec::with_capacity(self.cur.capacity_for(count.into(), size));
        for _ in 0..count {
            items.push(match m {
                0x0d => Value::Number(f64::from(self.cur.u32()? as i32)),
                0x0e => Value::Number(f64::from(self.cur.u32()?)),
                0x0f => Value::Number(self.cur.f64()?),
                _ => self.value(inner, register)?,
            });
        }
        self.complete(slot);
        Ok(Value::StrictArray(items))
    }
}

/// The variant AMF0 would use for this text, so that re-encoding and decoding again is the
/// identity.
fn text(s: String) -> Value {
    if s.len() <= NAME_MAX {
        Value::String(s)
    } else {
        Value::LongString(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let clean: String = s.split_whitespace().collect();
        hex::decode(clean).expect("test vector is valid hex")
    }

    fn one(s: &str) -> Result<Value, DecodeError> {
        let bytes = hex(s);
        let (value, used) = decode_value(&bytes)?;
        assert_eq!(used, bytes.len(), "whole vector consumed");
        Ok(value)
    }

    #[test]
    fn scalars() {
        assert_eq!(one("00"), Ok(Value::Undefined));
        assert_eq!(one("01"), Ok(Value::Null));
        assert_eq!(one("02"), Ok(Value::Boolean(false)));
        assert_eq!(one("03"), Ok(Value::Boolean(true)));
        assert_eq!(one("04 7f"), Ok(Value::Number(127.0)));
        assert_eq!(one("04 8100"), Ok(Value::Number(128.0)));
        assert_eq!(one("04 bfffffff"), Ok(Value::Number(268_435_455.0)));
        assert_eq!(one("04 c0808000"), Ok(Value::Number(-268_435_456.0)));
        assert_eq!(one("04 ffffffff"), Ok(Value::Number(-1.0)));
        assert_eq!(one("05 400c000000000000"), Ok(Value::Number(3.5)));
        assert_eq!(one("06 09 6c697665"), Ok(Value::from("live")));
        assert_eq!(one("06 01"), Ok(Value::from("")));
        assert_eq!(
            one("08 01 4272d3edfa400000"),
            Ok(Value::Date {
                millis: 1_293_840_000_000.0,
                timezone: 0
            })
        );
        assert_eq!(one("0b 09 3c612f3e"), Ok(Value::Xml("<a/>".into())));
        assert_eq!(one("07 09 3c612f3e"), Ok(Value::Xml("<a/>".into())));
        assert_eq!(one("0c 05 41ff"), Ok(Value::from("A\u{ff}")));
    }

    #[test]
    fn anonymous_dynamic_object_with_traits_reference() {
        // {prop: {a: 1}}: the inner object reuses the outer's traits (header 0x01 = traits 0).
        assert_eq!(
            one("0a 0b 01 09 70726f70 0a 01 03 61 04 01 01 01"),
            Ok(Value::object([(
                "prop",
                Value::object([("a", Value::Number(1.0))])
            )]))
        );
    }

    #[test]
    fn typed_objects_with_string_traits_and_object_references() {
        // [t1, t2, t1] of class test1 {a, b, c}: traits, strings and an object reference.
        let v = one("09 07 01
             0a 33 0b 7465737431 03 61 03 62 03 63 06 02 06 05 6262 06 07 636363
             0a 01 06 05 6132 06 07 626232 06 09 63636332
             0a 02")
        .unwrap();
        let t = |a: &str, b: &str, c: &str| Value::TypedObject {
            class_name: "test1".into(),
            properties: vec![
                ("a".into(), a.into()),
                ("b".into(), b.into()),
                ("c".into(), c.into()),
            ],
        };
        assert_eq!(
            v,
            Value::StrictArray(vec![
                t("a", "bb", "ccc"),
                t("a2", "bb2", "ccc2"),
                t("a", "bb", "ccc")
            ])
        );
    }

    #[test]
    fn mixed_array_becomes_an_ecma_array() {
        assert_eq!(
            one("09 05 03 6b 04 01 01 06 03 78 06 03 79"),
            // "k" => 1, then the dense part ["x", "y"].
            Ok(Value::EcmaArray(vec![
                ("k".into(), Value::Number(1.0)),
                ("0".into(), "x".into()),
                ("1".into(), "y".into()),
            ]))
        );
    }

    #[test]
    fn vectors_become_strict_arrays() {
        assert_eq!(
            one("0d 05 00 ffffffff 00000002"),
            Ok(Value::StrictArray(vec![
                Value::Number(-1.0),
                Value::Number(2.0)
            ]))
        );
        assert_eq!(
            one("0e 03 00 ffffffff"),
            Ok(Value::StrictArray(vec![Value::Number(4_294_967_295.0)]))
        );
        assert_eq!(
            one("10 03 00 01 01"),
            Ok(Value::StrictArray(vec![Value::Null]))
        );
    }

    #[test]
    fn bounds_and_errors() {
        assert!(matches!(
            one("09 ffffff7f 01"),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            one("0a ffffff7b 01"),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            one("0f ffffff7f 00"),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        assert_eq!(
            one("06 02"),
            Err(DecodeError::BadReference {
                table: "string",
                index: 1,
                len: 0,
                offset: 1
            })
        );
        assert_eq!(
            one("0a 05"),
            Err(DecodeError::BadReference {
                table: "traits",
                index: 1,
                len: 0,
                offset: 0
            })
        );
        assert_eq!(
            one("09 03 01 09 00"),
            Err(DecodeError::CyclicReference {
                index: 0,
                offset: 3
            })
        );
        assert_eq!(
            one("0a 07 07 466f6f"),
            Err(DecodeError::UnsupportedExternalizable {
                class_name: "Foo".into(),
                offset: 0
            })
        );
        assert_eq!(
            one("11"),
            Err(DecodeError::UnsupportedMarker {
                marker: 0x11,
                offset: 0
            })
        );
        assert_eq!(
            one("12"),
            Err(DecodeError::UnknownAmf3Marker {
                marker: 0x12,
                offset: 0
            })
        );
    }

    #[test]
    fn nested_arrays_are_depth_bounded() {
        let mut bytes = [0x09, 0x03, 0x01].repeat(crate::MAX_DEPTH + 1);
        bytes.push(0x01);
        assert!(matches!(
            decode_value(&bytes),
            Err(DecodeError::TooDeep { .. })
        ));
    }

    #[test]
    fn amf3_connect_command_payload() {
        // Type 17: format byte, AMF0 "connect", AMF0 1.0, then the command object in AMF3.
        let payload = hex("00
             02 0007 636f6e6e656374
             00 3ff0000000000000
             11 0a 0b 01
                07 617070 06 09 6c697665
                1d 6f626a656374456e636f64696e67 04 03
                01");
        assert_eq!(
            decode_command_payload(&payload),
            Ok(vec![
                Value::from("connect"),
                Value::Number(1.0),
                Value::object([
                    ("app", Value::from("live")),
                    ("objectEncoding", Value::Number(3.0)),
                ]),
            ])
        );
        // Without the format byte the same values decode.
        assert_eq!(
            decode_command_payload(&payload[1..]),
            decode_command_payload(&payload)
        );
    }

    #[test]
    fn amf3_tables_do_not_outlive_one_switch() {
        // The second AMF3 value references string 0, which only the first one defined.
        assert_eq!(
            decode_command_payload(&hex("00 11 06 03 61 11 06 00")),
            Err(DecodeError::BadReference {
                table: "string",
                index: 0,
                len: 0,
                offset: 7
            })
        );
    }

    #[test]
    fn string_reference_expansion_is_bounded() {
        // One 60 000-byte string then references to it, far past the budget.
        let mut bytes = vec![0x09];
        let count: u32 = 40;
        let dense = (count << 1) | 1;
        bytes.push(dense as u8);
        bytes.push(0x01);
        let len: u32 = 60_000;
        let h = (len << 1) | 1; // 120 001 needs three U29 bytes
        bytes.extend_from_slice(&[
            0x06,
            0x80 | ((h >> 14) & 0x7f) as u8,
            0x80 | ((h >> 7) & 0x7f) as u8,
            (h & 0x7f) as u8,
        ]);
        bytes.extend(std::iter::repeat_n(b'x', len as usize));
        for _ in 1..count {
            bytes.extend_from_slice(&[0x06, 0x00]);
        }
        assert!(matches!(
            decode_value(&bytes),
            Err(DecodeError::ReferenceBudgetExceeded { .. })
        ));
    }
}
