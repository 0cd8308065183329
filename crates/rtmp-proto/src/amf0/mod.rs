//! AMF0 (Action Message Format 0): the value encoding of RTMP commands and metadata.
//!
//! Objects keep their key order (`Vec`, not a map) because some clients care about it and it
//! makes round trips exact. Decoding is bounded: nesting is capped at [`MAX_DEPTH`], and no
//! allocation is sized from a length read off the wire.

mod decode;
mod encode;
#[cfg(test)]
pub(crate) mod tests;

pub use decode::{decode, decode_all};
pub use encode::{encode, encode_all};

/// Type markers (AMF0 spec §2.1). Markers we do not decode are listed so error messages and
/// tests can name them.
pub mod marker {
    /// IEEE-754 double.
    pub const NUMBER: u8 = 0x00;
    /// One byte, non-zero is true.
    pub const BOOLEAN: u8 = 0x01;
    /// UTF-8 with a u16 length.
    pub const STRING: u8 = 0x02;
    /// Anonymous object.
    pub const OBJECT: u8 = 0x03;
    /// Flash movie clip (reserved, never sent).
    pub const MOVIECLIP: u8 = 0x04;
    /// Null.
    pub const NULL: u8 = 0x05;
    /// Undefined.
    pub const UNDEFINED: u8 = 0x06;
    /// Reference to an earlier complex value (unsupported: it would allow aliasing).
    pub const REFERENCE: u8 = 0x07;
    /// Associative array with a (hint-only) count.
    pub const ECMA_ARRAY: u8 = 0x08;
    /// Terminator after an empty property name.
    pub const OBJECT_END: u8 = 0x09;
    /// Dense array with an authoritative count.
    pub const STRICT_ARRAY: u8 = 0x0A;
    /// Date: f64 milliseconds and an i16 time zone.
    pub const DATE: u8 = 0x0B;
    /// UTF-8 with a u32 length.
    pub const LONG_STRING: u8 = 0x0C;
    /// Unsupported (the marker itself, not our choice).
    pub const UNSUPPORTED: u8 = 0x0D;
    /// Record set (reserved).
    pub const RECORDSET: u8 = 0x0E;
    /// XML document.
    pub const XML_DOCUMENT: u8 = 0x0F;
    /// Typed object (class name + properties).
    pub const TYPED_OBJECT: u8 = 0x10;
    /// Switch to AMF3 for the next value.
    pub const AVMPLUS: u8 = 0x11;
}

/// Deepest nesting of objects/arrays accepted; real clients use 2 or 3 levels.
pub const MAX_DEPTH: usize = 32;

/// One AMF0 value. Long strings decode to [`Value::String`]; the encoder picks the long form
/// when a string does not fit in 65535 bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Marker 0x00: IEEE-754 double.
    Number(f64),
    /// Marker 0x01.
    Boolean(bool),
    /// Marker 0x02 (or 0x0C, long string).
    String(String),
    /// Marker 0x03: ordered key/value pairs.
    Object(Vec<(String, Value)>),
    /// Marker 0x05.
    Null,
    /// Marker 0x06.
    Undefined,
    /// Marker 0x08: associative array; its count field is only a hint and is not trusted.
    EcmaArray(Vec<(String, Value)>),
    /// Marker 0x0A.
    StrictArray(Vec<Value>),
    /// Marker 0x0B: milliseconds since the epoch and a (deprecated) time-zone offset.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Time-zone offset in minutes; senders should write 0.
        tz: i16,
    },
}

/// Why AMF0 input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input truncated while reading {0}")]
    Truncated(&'static str),
    /// A type marker we do not support (AMF0 reference, movieclip, XML document, typed object…).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("AMF0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A string that is not UTF-8.
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    /// An object-end marker (0x09) where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
}

impl Value {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Self::Object(p) | Self::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// Looks up `key` in an object or ECMA array (first match).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Builds an object from `(key, value)` pairs, keeping their order.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Self::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The boolean inside, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Builds an ECMA array from `(key, value)` pairs, keeping their order; `onMetaData` is
    /// conventionally sent as one.
    pub fn ecma_array<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Self::EcmaArray(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Shorthand for a number value.
    pub fn number(n: impl Into<f64>) -> Self {
        Self::Number(n.into())
    }

    /// Shorthand for a string value.
    pub fn string(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }
}
