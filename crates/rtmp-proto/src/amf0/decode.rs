use super::{Amf0Error, Value};

/// Decodes one value from the front of `buf`, advancing it past the value.
pub fn decode(buf: &mut &[u8]) -> Result<Value, Amf0Error> {
    let _ = buf;
    Err(Amf0Error::Truncated("unimplemented"))
}

/// Decodes every value in `buf` (a command or data message body).
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut cur = buf;
    let mut out = Vec::new();
    while !cur.is_empty() {
        out.push(decode(&mut cur)?);
    }
    Ok(out)
}
