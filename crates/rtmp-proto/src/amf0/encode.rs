use super::Value;
use bytes::BytesMut;

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut BytesMut) {
    let _ = (value, out);
}

/// Appends the encodings of `values` to `out`, one after the other.
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Value>, out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}
