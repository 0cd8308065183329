use super::{Value, marker};
use bytes::{BufMut, BytesMut};

/// Appends the encoding of `value` to `out`.
///
/// Encoding cannot fail: strings (and property names) too long for their length field are cut
/// at the last character boundary that fits, which in practice never happens for the values a
/// server sends, and keeps every caller free of an error path it could not handle anyway.
pub fn encode(value: &Value, out: &mut BytesMut) {
    match value {
        Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) => {
            if s.len() <= usize::from(u16::MAX) {
                out.put_u8(marker::STRING);
                put_short_string(s, out);
            } else {
                out.put_u8(marker::LONG_STRING);
                let s = truncate(s, u32::MAX as usize);
                out.put_u32(len_u32(s.len()));
                out.put_slice(s.as_bytes());
            }
        }
        Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_properties(props, out);
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(len_u32(props.len()));
            put_properties(props, out);
        }
        Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            // A strict array's count is authoritative, so never write more items than it says.
            let count = len_u32(items.len());
            out.put_u32(count);
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Value::Date { millis, tz } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*tz);
        }
    }
}

/// Appends the encodings of `values` to `out`, one after the other.
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Value>, out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn put_short_string(s: &str, out: &mut BytesMut) {
    let s = truncate(s, usize::from(u16::MAX));
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put_slice(s.as_bytes());
}

fn put_properties(props: &[(String, Value)], out: &mut BytesMut) {
    for (key, value) in props {
        put_short_string(key, out);
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}
