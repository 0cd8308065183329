use super::{Amf0Error, MAX_DEPTH, Value, marker};

/// Decodes one value from the front of `buf`, advancing it past the value.
///
/// On error `buf` is left where it was, so a caller that wants to report the offending bytes
/// still has them. Nesting is capped at [`MAX_DEPTH`] so hostile input cannot exhaust the stack.
pub fn decode(buf: &mut &[u8]) -> Result<Value, Amf0Error> {
    let mut cur = *buf;
    let value = decode_value(&mut cur, 0)?;
    *buf = cur;
    Ok(value)
}

/// Decodes every value in `buf` (a command or data message body).
///
/// Trailing garbage is an error rather than ignored: a body that does not parse completely is
/// not something we should act on.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut cur = buf;
    let mut out = Vec::new();
    while !cur.is_empty() {
        out.push(decode(&mut cur)?);
    }
    Ok(out)
}

/// Takes `N` bytes off the front of `buf`, or reports what was being read when input ran out.
fn take_array<const N: usize>(buf: &mut &[u8], what: &'static str) -> Result<[u8; N], Amf0Error> {
    let (head, rest) = buf
        .split_first_chunk::<N>()
        .ok_or(Amf0Error::Truncated(what))?;
    *buf = rest;
    Ok(*head)
}

/// Takes `len` bytes off the front of `buf`; `len` comes off the wire, so nothing is allocated
/// before the bytes are known to be present.
fn take_slice<'a>(
    buf: &mut &'a [u8],
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], Amf0Error> {
    let (head, rest) = buf
        .split_at_checked(len)
        .ok_or(Amf0Error::Truncated(what))?;
    *buf = rest;
    Ok(head)
}

fn read_u16(buf: &mut &[u8], what: &'static str) -> Result<u16, Amf0Error> {
    take_array::<2>(buf, what).map(u16::from_be_bytes)
}

fn read_u32(buf: &mut &[u8], what: &'static str) -> Result<u32, Amf0Error> {
    take_array::<4>(buf, what).map(u32::from_be_bytes)
}

fn read_f64(buf: &mut &[u8], what: &'static str) -> Result<f64, Amf0Error> {
    take_array::<8>(buf, what).map(f64::from_be_bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, Amf0Error> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Amf0Error::InvalidUtf8)
}

/// A UTF-8 string with a 16-bit length prefix (string values and property names).
fn read_short_string(buf: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = read_u16(buf, "string length")?;
    utf8(take_slice(buf, usize::from(len), "string")?)
}

fn read_long_string(buf: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = read_u32(buf, "long string length")?;
    // A length that does not even fit in usize cannot be present in the buffer either.
    let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated("long string"))?;
    utf8(take_slice(buf, len, "long string")?)
}

/// Key/value pairs up to the empty-key + object-end terminator, shared by objects and ECMA
/// arrays. An empty key followed by anything but 0x09 is an ordinary property with an empty
/// name, which the encoder can produce, so it is accepted.
fn read_properties(buf: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let key = read_short_string(buf)?;
        if key.is_empty() && buf.first() == Some(&marker::OBJECT_END) {
            *buf = buf.get(1..).unwrap_or_default();
            return Ok(props);
        }
        let value = decode_value(buf, depth)?;
        props.push((key, value));
    }
}

/// Decodes one value; `depth` counts the containers around it.
fn decode_value(buf: &mut &[u8], depth: usize) -> Result<Value, Amf0Error> {
    let [m] = take_array::<1>(buf, "type marker")?;
    match m {
        marker::NUMBER => read_f64(buf, "number").map(Value::Number),
        marker::BOOLEAN => take_array::<1>(buf, "boolean").map(|[b]| Value::Boolean(b != 0)),
        marker::STRING => read_short_string(buf).map(Value::String),
        marker::LONG_STRING => read_long_string(buf).map(Value::String),
        marker::NULL => Ok(Value::Null),
        marker::UNDEFINED => Ok(Value::Undefined),
        marker::OBJECT_END => Err(Amf0Error::UnexpectedObjectEnd),
        marker::DATE => {
            let millis = read_f64(buf, "date")?;
            let tz = take_array::<2>(buf, "date time zone").map(i16::from_be_bytes)?;
            Ok(Value::Date { millis, tz })
        }
        marker::OBJECT | marker::ECMA_ARRAY | marker::STRICT_ARRAY => {
            if depth >= MAX_DEPTH {
                return Err(Amf0Error::TooDeep);
            }
            let inner = depth + 1;
            match m {
                marker::OBJECT => read_properties(buf, inner).map(Value::Object),
                marker::ECMA_ARRAY => {
                    // The count is a hint that encoders routinely get wrong (often 0); the
                    // terminator is what ends the array.
                    let _hint = read_u32(buf, "ECMA array count")?;
                    read_properties(buf, inner).map(Value::EcmaArray)
                }
                _ => {
                    let count = read_u32(buf, "strict array count")?;
                    let count = usize::try_from(count).unwrap_or(usize::MAX);
                    // Every element takes at least one byte (a bare marker), so the buffer
                    // bounds how many elements can really follow.
                    let mut items = Vec::with_capacity(count.min(buf.len()));
                    for _ in 0..count {
                        items.push(decode_value(buf, inner)?);
                    }
                    Ok(Value::StrictArray(items))
                }
            }
        }
        other => Err(Amf0Error::UnsupportedMarker(other)),
    }
}
