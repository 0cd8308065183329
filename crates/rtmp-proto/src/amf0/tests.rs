use super::*;
use bytes::BytesMut;
use proptest::prelude::*;

/// Finite numbers only, so `PartialEq` on `Value` is a valid round-trip check.
pub(crate) fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
        Just(0.0),
        Just(-0.0),
        (-1.0e6..1.0e6f64),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z@_]{1,12}", any::<String>()]
}

/// Arbitrary values nested at most a few levels, shared with the message tests.
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arb_f64().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Boolean),
        any::<String>().prop_map(Value::String),
        Just(Value::Null),
        Just(Value::Undefined),
        (arb_f64(), any::<i16>()).prop_map(|(millis, tz)| Value::Date { millis, tz }),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec((arb_key(), inner.clone()), 0..8).prop_map(Value::Object),
            prop::collection::vec((arb_key(), inner.clone()), 0..8).prop_map(Value::EcmaArray),
            prop::collection::vec(inner, 0..8).prop_map(Value::StrictArray),
        ]
    })
}

fn enc(v: &Value) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(v, &mut out);
    out.to_vec()
}

proptest! {
    #[test]
    fn round_trip(v in arb_value()) {
        let bytes = enc(&v);
        let mut cur = &bytes[..];
        prop_assert_eq!(decode(&mut cur), Ok(v));
        prop_assert!(cur.is_empty());
    }

    #[test]
    fn round_trip_all(vs in prop::collection::vec(arb_value(), 0..6)) {
        let mut out = BytesMut::new();
        encode_all(&vs, &mut out);
        prop_assert_eq!(decode_all(&out), Ok(vs));
    }

    /// Whatever the bytes, decoding returns; it never panics.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_all(&bytes);
    }

    /// Every proper prefix of a valid encoding is an error, never a shorter value.
    #[test]
    fn truncation_is_an_error(v in arb_value(), cut in any::<prop::sample::Index>()) {
        let bytes = enc(&v);
        let cut = cut.index(bytes.len());
        let mut cur = &bytes[..cut];
        prop_assert!(decode(&mut cur).is_err());
    }
}

// ---- byte builders for hand-made vectors (independent of the encoder) ----

pub(crate) fn s(out: &mut Vec<u8>, text: &str) {
    out.push(0x02);
    key(out, text);
}

pub(crate) fn key(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub(crate) fn num(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

pub(crate) fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00, 0x09]);
}

/// The body of the `connect` ffmpeg (Lavf) sends when publishing.
pub(crate) fn ffmpeg_connect_body() -> Vec<u8> {
    let mut b = Vec::new();
    s(&mut b, "connect");
    num(&mut b, 1.0);
    b.push(0x03);
    key(&mut b, "app");
    s(&mut b, "live");
    key(&mut b, "type");
    s(&mut b, "nonprivate");
    key(&mut b, "flashVer");
    s(&mut b, "FMLE/3.0 (compatible; Lavf61.7.100)");
    key(&mut b, "tcUrl");
    s(&mut b, "rtmp://localhost:1935/live");
    end(&mut b);
    b
}

#[test]
fn ffmpeg_connect_vector() {
    let body = ffmpeg_connect_body();
    // Spot-check the hand-made bytes themselves against the spec layout.
    assert_eq!(&body[..10], b"\x02\x00\x07connect");
    assert_eq!(&body[10..19], &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    let values = decode_all(&body).unwrap();
    let expected = vec![
        Value::string("connect"),
        Value::Number(1.0),
        Value::object([
            ("app", Value::string("live")),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; Lavf61.7.100)"),
            ),
            ("tcUrl", Value::string("rtmp://localhost:1935/live")),
        ]),
    ];
    assert_eq!(values, expected);
    assert_eq!(values[2].get("app").and_then(Value::as_str), Some("live"));
    let mut out = BytesMut::new();
    encode_all(&expected, &mut out);
    assert_eq!(&out[..], &body[..]);
}

#[test]
fn scalar_vectors() {
    assert_eq!(enc(&Value::Boolean(true)), [0x01, 0x01]);
    assert_eq!(enc(&Value::Null), [0x05]);
    assert_eq!(enc(&Value::Undefined), [0x06]);
    assert_eq!(enc(&Value::string("ab")), [0x02, 0x00, 0x02, b'a', b'b']);
    assert_eq!(
        enc(&Value::Date {
            millis: 1.0,
            tz: -60
        }),
        [0x0B, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0xFF, 0xC4]
    );
    assert_eq!(
        enc(&Value::StrictArray(vec![
            Value::Null,
            Value::Boolean(false)
        ])),
        [0x0A, 0, 0, 0, 2, 0x05, 0x01, 0x00]
    );
    // Any non-zero boolean byte is true.
    assert_eq!(decode_all(&[0x01, 0x7F]), Ok(vec![Value::Boolean(true)]));
}

#[test]
fn ecma_array_count_is_only_a_hint() {
    // Count says 0 (as some encoders write) but two pairs follow.
    let mut b = vec![0x08, 0, 0, 0, 0];
    key(&mut b, "duration");
    num(&mut b, 0.0);
    key(&mut b, "width");
    num(&mut b, 1280.0);
    end(&mut b);
    let v = decode_all(&b).unwrap();
    assert_eq!(
        v,
        vec![Value::ecma_array([
            ("duration", Value::Number(0.0)),
            ("width", Value::Number(1280.0)),
        ])]
    );
}

#[test]
fn long_string_both_ways() {
    let long = "x".repeat(70_000);
    let bytes = enc(&Value::string(long.clone()));
    assert_eq!(bytes[0], 0x0C);
    assert_eq!(&bytes[1..5], &70_000u32.to_be_bytes());
    assert_eq!(decode_all(&bytes), Ok(vec![Value::String(long)]));
    // Exactly 65535 bytes still fits the short form.
    let edge = "y".repeat(65_535);
    assert_eq!(enc(&Value::string(edge))[0], 0x02);
    // A short long-string decodes to a plain string.
    assert_eq!(
        decode_all(&[0x0C, 0, 0, 0, 1, b'z']),
        Ok(vec![Value::string("z")])
    );
}

#[test]
fn empty_key_property_is_not_the_end() {
    let v = Value::object([("", Value::Null), ("a", Value::Boolean(true))]);
    let bytes = enc(&v);
    assert_eq!(decode_all(&bytes), Ok(vec![v]));
}

#[test]
fn decode_advances_only_on_success() {
    let bytes = [0x05, 0x02, 0x00, 0x05, b'a'];
    let mut cur = &bytes[..];
    assert_eq!(decode(&mut cur), Ok(Value::Null));
    assert_eq!(cur.len(), 4);
    assert_eq!(decode(&mut cur), Err(Amf0Error::Truncated("string")));
    assert_eq!(cur.len(), 4);
}

// ---- hostile input ----

/// `[03 0001 'a'] x n, 05, [00 0009] x n`: objects nested `n` deep.
fn nested_objects(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..n {
        b.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    b.push(0x05);
    for _ in 0..n {
        b.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    b
}

#[test]
fn deep_nesting_is_rejected_on_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| decode_all(&nested_objects(5000)))
        .unwrap();
    assert_eq!(handle.join().unwrap(), Err(Amf0Error::TooDeep));
}

#[test]
fn nesting_limit_is_exact() {
    let ok = nested_objects(MAX_DEPTH);
    assert!(decode_all(&ok).is_ok());
    let too_deep = nested_objects(MAX_DEPTH + 1);
    assert_eq!(decode_all(&too_deep), Err(Amf0Error::TooDeep));
    // Strict and ECMA arrays count towards the same limit.
    let mut arrays = Vec::new();
    for i in 0..=MAX_DEPTH {
        if i % 2 == 0 {
            arrays.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        } else {
            arrays.extend_from_slice(&[0x08, 0, 0, 0, 1, 0x00, 0x01, b'k']);
        }
    }
    assert_eq!(decode_all(&arrays), Err(Amf0Error::TooDeep));
}

#[test]
fn huge_strict_array_count_does_not_allocate() {
    let r = decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(r, Err(Amf0Error::Truncated("type marker")));
}

#[test]
fn huge_ecma_array_count_does_not_allocate() {
    let r = decode_all(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(r, Err(Amf0Error::Truncated("string length")));
}

#[test]
fn huge_long_string_length_is_truncated_not_allocated() {
    let r = decode_all(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']);
    assert_eq!(r, Err(Amf0Error::Truncated("long string")));
}

#[test]
fn truncated_string_is_not_padded() {
    assert_eq!(
        decode_all(&[0x02, 0x00, 0x05, 0x61]),
        Err(Amf0Error::Truncated("string"))
    );
}

#[test]
fn truncated_scalars() {
    assert_eq!(
        decode_all(&[0x00, 1, 2]),
        Err(Amf0Error::Truncated("number"))
    );
    assert_eq!(decode_all(&[0x01]), Err(Amf0Error::Truncated("boolean")));
    assert_eq!(
        decode_all(&[0x02, 0x00]),
        Err(Amf0Error::Truncated("string length"))
    );
    assert_eq!(
        decode_all(&[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Amf0Error::Truncated("date time zone"))
    );
    // An object missing its terminator.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x05]),
        Err(Amf0Error::Truncated("string length"))
    );
    // Empty key but the input stops before the end marker.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x00]),
        Err(Amf0Error::Truncated("type marker"))
    );
}

#[test]
fn invalid_utf8() {
    assert_eq!(
        decode_all(&[0x02, 0x00, 0x01, 0xFF]),
        Err(Amf0Error::InvalidUtf8)
    );
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x02, 0xC3, 0x28, 0x05, 0x00, 0x00, 0x09]),
        Err(Amf0Error::InvalidUtf8)
    );
}

#[test]
fn unsupported_markers() {
    for m in [
        marker::MOVIECLIP,
        marker::REFERENCE,
        marker::UNSUPPORTED,
        marker::RECORDSET,
        marker::XML_DOCUMENT,
        marker::TYPED_OBJECT,
        marker::AVMPLUS,
        0x12,
        0xFF,
    ] {
        assert_eq!(
            decode_all(&[m, 0, 0, 0, 0]),
            Err(Amf0Error::UnsupportedMarker(m))
        );
    }
}

#[test]
fn stray_object_end() {
    assert_eq!(decode_all(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
    // An object-end marker where an array element is expected.
    assert_eq!(
        decode_all(&[0x0A, 0, 0, 0, 1, 0x09]),
        Err(Amf0Error::UnexpectedObjectEnd)
    );
}
