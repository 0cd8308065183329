use super::*;
use crate::amf0::tests::{arb_f64, arb_value, end, ffmpeg_connect_body, key, num, s};
use crate::chunk::MessageHeader;
use proptest::prelude::*;

fn raw(type_id: u8, stream_id: u32, payload: &[u8]) -> RawMessage {
    RawMessage {
        header: MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id,
        },
        payload: Bytes::copy_from_slice(payload),
    }
}

fn parse(type_id: u8, payload: &[u8]) -> Result<Message, MessageError> {
    Message::parse(&raw(type_id, 0, payload))
}

fn round_trip(m: &Message) -> Result<Message, MessageError> {
    let (t, body) = m.encode();
    Message::parse_payload(t, &body)
}

// ---- strategies ----

fn arb_user_control() -> impl Strategy<Value = UserControl> {
    prop_oneof![
        any::<u32>().prop_map(UserControl::StreamBegin),
        any::<u32>().prop_map(UserControl::StreamEof),
        any::<u32>().prop_map(UserControl::StreamDry),
        (any::<u32>(), any::<u32>())
            .prop_map(|(stream_id, millis)| UserControl::SetBufferLength { stream_id, millis }),
        any::<u32>().prop_map(UserControl::StreamIsRecorded),
        any::<u32>().prop_map(UserControl::PingRequest),
        any::<u32>().prop_map(UserControl::PingResponse),
        (
            any::<u16>().prop_filter("unknown event", |e| *e == 5 || *e > 7),
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(event_type, data)| UserControl::Other {
                event_type,
                data: data.into()
            }),
    ]
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn arb_command() -> impl Strategy<Value = Command> {
    (
        any::<String>(),
        arb_f64(),
        arb_value(),
        prop::collection::vec(arb_value(), 0..4),
    )
        .prop_map(|(name, tid, obj, args)| Command::new(name, tid, obj, args))
}

fn arb_message() -> impl Strategy<Value = Message> {
    let known = [1u8, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22];
    prop_oneof![
        (0..=crate::chunk::MAX_CHUNK_SIZE).prop_map(Message::SetChunkSize),
        any::<u32>().prop_map(Message::Abort),
        any::<u32>().prop_map(Message::Acknowledgement),
        arb_user_control().prop_map(Message::UserControl),
        any::<u32>().prop_map(Message::WindowAckSize),
        (any::<u32>(), any::<u8>())
            .prop_map(|(size, limit)| Message::SetPeerBandwidth { size, limit }),
        arb_bytes().prop_map(Message::Audio),
        arb_bytes().prop_map(Message::Video),
        prop::collection::vec(arb_value(), 0..4).prop_map(Message::Data),
        arb_command().prop_map(Message::Command),
        arb_bytes().prop_map(Message::Aggregate),
        (
            any::<u8>().prop_filter("unknown type", move |t| !known.contains(t)),
            arb_bytes()
        )
            .prop_map(|(type_id, payload)| Message::Other { type_id, payload }),
    ]
}

proptest! {
    #[test]
    fn every_variant_round_trips(m in arb_message()) {
        prop_assert_eq!(round_trip(&m), Ok(m));
    }

    #[test]
    fn encoded_type_matches_type_id(m in arb_message()) {
        prop_assert_eq!(m.encode().0, m.type_id());
    }

    /// Any body under any type id parses or fails cleanly.
    #[test]
    fn garbage_never_panics(t in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(t, &body);
    }

    /// An AMF3-wrapped command is the AMF0 body behind one format byte.
    #[test]
    fn amf3_wrapped_command_round_trips(cmd in arb_command()) {
        let mut body = vec![0x00];
        body.extend_from_slice(&cmd.encode());
        prop_assert_eq!(parse(type_id::COMMAND_AMF3, &body), Ok(Message::Command(cmd)));
    }
}

// ---- control messages ----

#[test]
fn protocol_control_vectors() {
    assert_eq!(parse(1, &[0, 0, 0x10, 0]), Ok(Message::SetChunkSize(4096)));
    assert_eq!(parse(2, &[0, 0, 0, 4]), Ok(Message::Abort(4)));
    assert_eq!(
        parse(3, &[0, 0x4C, 0x4B, 0x40]),
        Ok(Message::Acknowledgement(5_000_000))
    );
    assert_eq!(
        parse(5, &[0, 0x26, 0x25, 0xA0]),
        Ok(Message::WindowAckSize(2_500_000))
    );
    assert_eq!(
        parse(6, &[0, 0x26, 0x25, 0xA0, 0x01]),
        Ok(Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: 1
        })
    );
    assert_eq!(
        Message::SetChunkSize(4096).encode(),
        (1, Bytes::from_static(&[0, 0, 0x10, 0]))
    );
    assert_eq!(
        Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: 2
        }
        .encode(),
        (6, Bytes::from_static(&[0, 0x26, 0x25, 0xA0, 0x02]))
    );
}

#[test]
fn set_chunk_size_top_bit_is_masked() {
    assert_eq!(
        parse(1, &[0x80, 0, 0x10, 0]),
        Ok(Message::SetChunkSize(4096))
    );
    assert_eq!(
        Message::SetChunkSize(0x8000_1000).encode().1,
        Bytes::from_static(&[0, 0, 0x10, 0])
    );
}

#[test]
fn set_peer_bandwidth_without_limit_byte() {
    assert_eq!(
        parse(6, &[0, 0, 0x10, 0]),
        Ok(Message::SetPeerBandwidth {
            size: 4096,
            limit: 2
        })
    );
}

#[test]
fn short_fixed_bodies() {
    for t in [1u8, 2, 3, 5, 6] {
        assert_eq!(
            parse(t, &[0, 0, 1]),
            Err(MessageError::TooShort {
                type_id: t,
                need: 4,
                got: 3
            })
        );
    }
    assert_eq!(
        parse(4, &[0]),
        Err(MessageError::TooShort {
            type_id: 4,
            need: 2,
            got: 1
        })
    );
    assert_eq!(
        parse(4, &[0, 0, 0, 0, 1]),
        Err(MessageError::TooShort {
            type_id: 4,
            need: 6,
            got: 5
        })
    );
    assert_eq!(
        parse(4, &[0, 3, 0, 0, 0, 1, 0, 0]),
        Err(MessageError::TooShort {
            type_id: 4,
            need: 10,
            got: 8
        })
    );
    assert_eq!(
        parse(17, &[]),
        Err(MessageError::TooShort {
            type_id: 17,
            need: 1,
            got: 0
        })
    );
    assert_eq!(
        parse(15, &[]),
        Err(MessageError::TooShort {
            type_id: 15,
            need: 1,
            got: 0
        })
    );
}

#[test]
fn user_control_vectors() {
    let uc = |b: &[u8]| parse(4, b);
    assert_eq!(
        uc(&[0, 0, 0, 0, 0, 1]),
        Ok(Message::UserControl(UserControl::StreamBegin(1)))
    );
    // ffmpeg's SetBufferLength for stream 1, 3000 ms.
    assert_eq!(
        uc(&[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8]),
        Ok(Message::UserControl(UserControl::SetBufferLength {
            stream_id: 1,
            millis: 3000
        }))
    );
    assert_eq!(
        uc(&[0, 7, 0, 0, 0x30, 0x39]),
        Ok(Message::UserControl(UserControl::PingResponse(12345)))
    );
    // Event 31 (a non-standard "buffer empty") is kept as is.
    assert_eq!(
        uc(&[0, 31, 0, 0, 0, 1]),
        Ok(Message::UserControl(UserControl::Other {
            event_type: 31,
            data: Bytes::from_static(&[0, 0, 0, 1])
        }))
    );
    assert_eq!(
        Message::UserControl(UserControl::PingRequest(7)).encode(),
        (4, Bytes::from_static(&[0, 6, 0, 0, 0, 7]))
    );
}

#[test]
fn media_is_zero_copy() {
    let r = raw(9, 1, &[0x17, 0x00, 0, 0, 0, 1, 2, 3]);
    let Ok(Message::Video(body)) = Message::parse(&r) else {
        panic!("not video");
    };
    assert_eq!(body.as_ptr(), r.payload.as_ptr());
    assert_eq!(body.len(), r.payload.len());
    let r = raw(8, 1, &[0xAF, 0x01, 9]);
    assert_eq!(Message::parse(&r), Ok(Message::Audio(r.payload.clone())));
    let r = raw(22, 1, &[1, 2, 3]);
    assert_eq!(
        Message::parse(&r),
        Ok(Message::Aggregate(r.payload.clone()))
    );
}

#[test]
fn other_types_are_kept() {
    assert_eq!(
        parse(19, &[1, 2]),
        Ok(Message::Other {
            type_id: 19,
            payload: Bytes::from_static(&[1, 2])
        })
    );
}

// ---- real client commands (ffmpeg / Lavf publishing) ----

fn command(name: &str, tid: f64, args: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    s(&mut b, name);
    num(&mut b, tid);
    b.push(0x05);
    for a in args {
        s(&mut b, a);
    }
    b
}

#[test]
fn ffmpeg_connect() {
    let Ok(Message::Command(cmd)) = parse(20, &ffmpeg_connect_body()) else {
        panic!("not a command");
    };
    assert_eq!(cmd.name, "connect");
    assert_eq!(cmd.transaction_id, 1.0);
    assert_eq!(
        cmd.command_object.get("app").and_then(Value::as_str),
        Some("live")
    );
    assert_eq!(
        cmd.command_object.get("tcUrl").and_then(Value::as_str),
        Some("rtmp://localhost:1935/live")
    );
    assert!(cmd.args.is_empty());
    // Re-encoding gives the client's exact bytes back.
    assert_eq!(&cmd.encode()[..], &ffmpeg_connect_body()[..]);
}

#[test]
fn ffmpeg_publish_sequence() {
    let cases: [(Vec<u8>, Command); 4] = [
        (
            command("releaseStream", 2.0, &["mystream"]),
            Command::new(
                "releaseStream",
                2.0,
                Value::Null,
                vec![Value::string("mystream")],
            ),
        ),
        (
            command("FCPublish", 3.0, &["mystream"]),
            Command::new(
                "FCPublish",
                3.0,
                Value::Null,
                vec![Value::string("mystream")],
            ),
        ),
        (
            command("createStream", 4.0, &[]),
            Command::new("createStream", 4.0, Value::Null, vec![]),
        ),
        (
            command("publish", 5.0, &["mystream", "live"]),
            Command::new(
                "publish",
                5.0,
                Value::Null,
                vec![Value::string("mystream"), Value::string("live")],
            ),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(parse(20, &bytes), Ok(Message::Command(expected.clone())));
        assert_eq!(&expected.encode()[..], &bytes[..]);
    }
    let Ok(Message::Command(publish)) = parse(20, &command("publish", 5.0, &["k", "live"])) else {
        panic!("not a command");
    };
    assert_eq!(publish.str_arg(0), Some("k"));
    assert_eq!(publish.str_arg(1), Some("live"));
}

fn set_data_frame_body() -> Vec<u8> {
    let mut b = Vec::new();
    s(&mut b, "@setDataFrame");
    s(&mut b, "onMetaData");
    b.extend_from_slice(&[0x08, 0, 0, 0, 6]);
    key(&mut b, "duration");
    num(&mut b, 0.0);
    key(&mut b, "width");
    num(&mut b, 1280.0);
    key(&mut b, "height");
    num(&mut b, 720.0);
    key(&mut b, "videocodecid");
    num(&mut b, 7.0);
    key(&mut b, "stereo");
    b.extend_from_slice(&[0x01, 0x01]);
    key(&mut b, "encoder");
    s(&mut b, "Lavf61.7.100");
    end(&mut b);
    b
}

#[test]
fn ffmpeg_set_data_frame() {
    let body = set_data_frame_body();
    let Ok(Message::Data(values)) = parse(18, &body) else {
        panic!("not data");
    };
    assert_eq!(values.len(), 3);
    assert_eq!(values[0].as_str(), Some("@setDataFrame"));
    assert_eq!(values[1].as_str(), Some("onMetaData"));
    assert_eq!(values[2].get("width").and_then(Value::as_f64), Some(1280.0));
    assert_eq!(values[2].get("stereo").and_then(Value::as_bool), Some(true));
    assert_eq!(
        values[2].get("encoder").and_then(Value::as_str),
        Some("Lavf61.7.100")
    );
    let (t, out) = Message::Data(values.clone()).encode();
    assert_eq!(t, 18);
    assert_eq!(&out[..], &body[..]);
    // The relayed form drops `@setDataFrame`.
    let relayed = Message::on_metadata(values[2].clone());
    assert_eq!(round_trip(&relayed), Ok(relayed));
    // The AMF3 data form: one format byte, then the same AMF0.
    let mut amf3 = vec![0x00];
    amf3.extend_from_slice(&body);
    assert_eq!(parse(15, &amf3), Ok(Message::Data(values)));
}

#[test]
fn amf3_wrapped_connect() {
    let mut body = vec![0x00];
    body.extend_from_slice(&ffmpeg_connect_body());
    let via_amf3 = parse(17, &body);
    let via_amf0 = parse(20, &ffmpeg_connect_body());
    assert!(matches!(via_amf3, Ok(Message::Command(_))));
    assert_eq!(via_amf3, via_amf0);
    // A value that switches to AMF3 proper is refused, not misread.
    let mut body = vec![0x00];
    s(&mut body, "connect");
    num(&mut body, 1.0);
    body.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01]);
    assert_eq!(
        parse(17, &body),
        Err(MessageError::Amf0 {
            type_id: 17,
            source: Amf0Error::UnsupportedMarker(0x11)
        })
    );
}

#[test]
fn command_shape() {
    // No command object at all: it reads as Null.
    let mut b = Vec::new();
    s(&mut b, "deleteStream");
    num(&mut b, 0.0);
    assert_eq!(
        parse(20, &b),
        Ok(Message::Command(Command::new(
            "deleteStream",
            0.0,
            Value::Null,
            vec![]
        )))
    );
    // Missing transaction id, wrong types, empty body.
    let mut b = Vec::new();
    s(&mut b, "connect");
    assert_eq!(parse(20, &b), Err(MessageError::MalformedCommand));
    let mut b = Vec::new();
    num(&mut b, 1.0);
    num(&mut b, 1.0);
    assert_eq!(parse(20, &b), Err(MessageError::MalformedCommand));
    assert_eq!(parse(20, &[]), Err(MessageError::MalformedCommand));
    // Bad AMF.
    assert_eq!(
        parse(20, &[0x02, 0x00, 0x05, 0x61]),
        Err(MessageError::Amf0 {
            type_id: 20,
            source: Amf0Error::Truncated("string")
        })
    );
    assert_eq!(
        parse(18, &[0x07, 0, 1]),
        Err(MessageError::Amf0 {
            type_id: 18,
            source: Amf0Error::UnsupportedMarker(7)
        })
    );
}

#[test]
fn reply_builders() {
    let ok = Command::result(
        1.0,
        Value::object([
            ("fmsVer", Value::string("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
        ]),
        Command::status_info(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        ),
    );
    assert_eq!(ok.name, "_result");
    let m = Message::command(ok);
    assert_eq!(m.encode().0, type_id::COMMAND_AMF0);
    assert_eq!(round_trip(&m), Ok(m));

    let status = Command::on_status("status", "NetStream.Publish.Start", "Start publishing");
    assert_eq!(status.transaction_id, 0.0);
    assert_eq!(
        status
            .arg(0)
            .and_then(|i| i.get("code"))
            .and_then(Value::as_str),
        Some("NetStream.Publish.Start")
    );
    // Hand-check the head of the encoding: "onStatus", 0.0, null, {level: …
    let body = status.encode();
    let mut head = Vec::new();
    s(&mut head, "onStatus");
    num(&mut head, 0.0);
    head.push(0x05);
    head.push(0x03);
    key(&mut head, "level");
    s(&mut head, "status");
    assert_eq!(&body[..head.len()], &head[..]);

    let err = Command::error(
        2.0,
        Value::Null,
        Command::status_info("error", "NetStream.Publish.BadName", "Stream busy"),
    );
    assert_eq!(err.name, "_error");
    assert_eq!(Command::decode(&err.encode()), Ok(err));
    let bw = Command::on_bw_done();
    assert_eq!(Command::decode(&bw.encode()), Ok(bw));
    // createStream's reply carries the stream id as its argument.
    let cs = Command::result(4.0, Value::Null, Value::Number(1.0));
    assert_eq!(cs.arg(0).and_then(Value::as_f64), Some(1.0));
}
