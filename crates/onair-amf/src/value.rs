//! The AMF value model shared by the AMF0 and AMF3 decoders.

/// One AMF value.
///
/// The variants follow the AMF0 type markers (AMF0 spec §2). AMF3 values decode into the same
/// enum (see [`crate::amf3`] for the mapping), so the RTMP layer handles one model whatever
/// `objectEncoding` the peer chose.
///
/// Ordered properties are kept as a `Vec` rather than a map: RTMP peers rely on the order they
/// sent (e.g. `@setDataFrame` relays), and duplicate keys must survive a round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `number-marker` 0x00: an IEEE-754 double.
    Number(f64),
    /// `boolean-marker` 0x01.
    Boolean(bool),
    /// `string-marker` 0x02: at most 65 535 bytes of UTF-8 when encoded; longer strings are
    /// written as a long string.
    String(String),
    /// `object-marker` 0x03: an anonymous object with ordered properties.
    Object(Vec<(String, Value)>),
    /// `null-marker` 0x05.
    Null,
    /// `undefined-marker` 0x06.
    Undefined,
    /// `ecma-array-marker` 0x08: an associative array (FFmpeg and OBS send `onMetaData` as one).
    EcmaArray(Vec<(String, Value)>),
    /// `strict-array-marker` 0x0A: a dense array (E-RTMP `fourCcList` is one).
    StrictArray(Vec<Value>),
    /// `date-marker` 0x0B: milliseconds since the Unix epoch (UTC) and a time zone the AMF0
    /// spec says is reserved and should be 0.
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Reserved time-zone field (AMF0 spec §2.13), kept as sent.
        timezone: i16,
    },
    /// `long-string-marker` 0x0C: a string with a 32-bit length.
    LongString(String),
    /// `xml-document-marker` 0x0F (and AMF3 `xml`/`xml-doc`).
    Xml(String),
    /// `typed-object-marker` 0x10: an object with a registered class name.
    TypedObject {
        /// The class alias.
        class_name: String,
        /// The ordered properties.
        properties: Vec<(String, Value)>,
    },
}

impl Value {
    /// The text of a [`Value::String`] or [`Value::LongString`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a [`Value::Number`].
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The flag of a [`Value::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The ordered properties of an [`Value::Object`], [`Value::EcmaArray`] or
    /// [`Value::TypedObject`].
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(props)
            | Value::EcmaArray(props)
            | Value::TypedObject {
                properties: props, ..
            } => Some(props),
            _ => None,
        }
    }

    /// The first property named `key` of an object-like value (see [`Value::properties`]).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Builds an anonymous [`Value::Object`] from `(key, value)` pairs, keeping their order.
    ///
    /// ```
    /// use onair_amf::Value;
    /// let status = Value::object([("level", Value::from("status")), ("code", "NetStream.Publish.Start".into())]);
    /// assert_eq!(status.get("level").and_then(Value::as_str), Some("status"));
    /// ```
    pub fn object<I, K>(props: I) -> Value
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_pick_the_matching_variant() {
        assert_eq!(Value::from("a").as_str(), Some("a"));
        assert_eq!(Value::LongString("b".into()).as_str(), Some("b"));
        assert_eq!(Value::Xml("c".into()).as_str(), None);
        assert_eq!(Value::Number(2.5).as_number(), Some(2.5));
        assert_eq!(Value::Boolean(true).as_number(), None);
        assert_eq!(Value::Boolean(true).as_bool(), Some(true));
        assert_eq!(Value::Null.properties(), None);
    }

    #[test]
    fn get_returns_the_first_match_in_any_object_like_value() {
        let props = vec![
            ("k".to_owned(), Value::Number(1.0)),
            ("k".to_owned(), Value::Number(2.0)),
        ];
        for v in [
            Value::Object(props.clone()),
            Value::EcmaArray(props.clone()),
            Value::TypedObject {
                class_name: "C".into(),
                properties: props.clone(),
            },
        ] {
            assert_eq!(v.get("k"), Some(&Value::Number(1.0)));
            assert_eq!(v.get("missing"), None);
        }
        assert_eq!(Value::StrictArray(vec![]).get("k"), None);
    }
}
