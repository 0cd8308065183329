//! The gateway's JSON: int64 fields as strings (or absent when zero), keys and values in
//! base64.

use super::EtcdError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// One key as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kv {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    /// The revision the key was created at (a claim's identity).
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    /// The lease it lives under (0: none).
    pub(crate) lease: i64,
}

/// An int64 as the gateway sends it: a string, a number, or absent (zero).
pub(crate) fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Result<Vec<u8>, EtcdError> {
    match v.as_str() {
        None => Ok(Vec::new()),
        Some(s) => STANDARD
            .decode(s)
            .map_err(|e| EtcdError::Malformed(format!("base64: {e}"))),
    }
}

/// One `mvccpb.KeyValue`.
pub(crate) fn kv(v: &Value) -> Result<Kv, EtcdError> {
    let key = String::from_utf8(unb64(&v["key"])?)
        .map_err(|_| EtcdError::Malformed("a key that is not UTF-8".to_owned()))?;
    Ok(Kv {
        key,
        value: unb64(&v["value"])?,
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
        lease: int(&v["lease"]),
    })
}

/// A `kvs` array (absent: none).
pub(crate) fn kvs(v: &Value) -> Result<Vec<Kv>, EtcdError> {
    match v {
        Value::Array(items) => items.iter().map(kv).collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(EtcdError::Malformed(format!("kvs is not a list: {other}"))),
    }
}

/// The range end that covers every key starting with `prefix` (etcd's "prefix + 1").
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_json() {
        assert_eq!(
            int(&json!("2324035750723348999")),
            2_324_035_750_723_348_999
        );
        assert_eq!(int(&json!(5)), 5);
        assert_eq!(int(&Value::Null), 0);
        let v = json!({"key":"L2wvc3RyZWFtcy9saXZlL2E=","create_revision":"2","mod_revision":"3",
                       "version":"1","value":"aGVsbG8=","lease":"77"});
        let kv = kv(&v).unwrap();
        assert_eq!(kv.key, "/l/streams/live/a");
        assert_eq!(kv.value, b"hello");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.lease), (2, 3, 77));
        assert_eq!(kvs(&Value::Null).unwrap(), vec![]);
        assert!(kvs(&json!([{"key": "%%%"}])).is_err());
        assert_eq!(b64(b"/l/"), "L2wv");
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/l/"), b"/l0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\x00");
    }
}
