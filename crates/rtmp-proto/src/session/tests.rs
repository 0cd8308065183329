//! Deterministic session tests: a scripted client, an explicit clock, no sockets.

mod errors;
mod timers;
mod util;

use super::*;
use crate::amf0;
use crate::chunk::ChunkError;
use crate::handshake::{HANDSHAKE_SIZE, HandshakeError};
use crate::message::type_id;
use util::*;

fn s(text: &str) -> Value {
    Value::string(text)
}

fn codes(replies: &[Reply]) -> Vec<&str> {
    replies.iter().filter_map(Reply::status_code).collect()
}

fn user_controls(replies: &[Reply]) -> Vec<UserControl> {
    replies
        .iter()
        .filter_map(|r| match &r.message {
            Message::UserControl(uc) => Some(uc.clone()),
            _ => None,
        })
        .collect()
}

// ---- publish flow ----

/// The whole ffmpeg publish conversation, with the handshake delivered `step` bytes per read.
fn publish_flow(step: usize) -> Harness {
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(step);
    assert!(h.replies().is_empty());
    assert!(h.events().is_empty());

    // OBS and FMLE announce a bigger chunk size straight away; the server must follow it.
    h.queue(C_CONTROL, 0, 0, &Message::SetChunkSize(4096));
    h.connect("live/").unwrap();
    let replies = h.replies();
    let kinds: Vec<&Message> = replies.iter().map(|r| &r.message).collect();
    assert!(matches!(
        kinds[..],
        [
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2
            },
            Message::SetChunkSize(4096),
            Message::Command(_)
        ]
    ));
    let result = replies[3].command().unwrap();
    assert_eq!(result.name, "_result");
    assert_eq!(result.transaction_id, 1.0);
    assert_eq!(
        result.command_object.get("fmsVer").and_then(Value::as_str),
        Some("FMS/3,0,1,123")
    );
    assert_eq!(
        replies[3].status_code(),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(replies[3].header.stream_id, 0);
    assert_eq!(h.server.out_chunk_size(), 4096);
    assert_eq!(
        h.events(),
        [Event::Connected {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live/".into())
        }]
    );

    for (tid, name) in [(2.0, "releaseStream"), (3.0, "FCPublish")] {
        h.call(0, name, tid, vec![s("name?key=abc")]).unwrap();
        let replies = h.replies();
        assert_eq!(replies.len(), 1, "{name} answered once");
        let cmd = replies[0].command().unwrap();
        assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("_result", tid));
    }

    h.call(0, "createStream", 4.0, vec![]).unwrap();
    let replies = h.replies();
    let cmd = replies[0].command().unwrap();
    assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("_result", 4.0));
    assert_eq!(cmd.args, [Value::Number(1.0)]);

    h.call(1, "publish", 5.0, vec![s("name?key=abc"), s("live")])
        .unwrap();
    assert!(
        h.replies().is_empty(),
        "nothing is said before the server decides"
    );
    assert_eq!(
        h.events(),
        [Event::PublishRequested {
            stream_id: 1,
            name: "name".into(),
            query: "key=abc".into()
        }]
    );
    assert_eq!(h.server.role(), Role::PublishPending(1));

    h.server.accept_publish(h.now);
    let replies = h.replies();
    assert_eq!(user_controls(&replies), [UserControl::StreamBegin(1)]);
    assert_eq!(codes(&replies), ["NetStream.Publish.Start"]);
    let status = replies.iter().find(|r| r.status_code().is_some()).unwrap();
    assert_eq!(
        (status.header.stream_id, status.header.csid),
        (1, CSID_STREAM)
    );
    assert_eq!(h.server.role(), Role::Publisher(1));
    assert_eq!(h.server.timers().get(Timer::Handshake), None);
    h
}

#[test]
fn ffmpeg_publish_flow() {
    let mut h = publish_flow(usize::MAX);

    let meta = Value::ecma_array([
        ("width", Value::number(1280)),
        ("height", Value::number(720)),
    ]);
    h.queue(
        C_STREAM,
        1,
        0,
        &Message::Data(vec![s("@setDataFrame"), s("onMetaData"), meta.clone()]),
    );
    h.flush().unwrap();
    let events = h.events();
    let [Event::Media(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.kind, MediaKind::Metadata);
    assert_eq!(
        amf0::decode_all(&m.payload).unwrap(),
        [s("onMetaData"), meta]
    );

    // Audio at chunk size 4096 in one chunk, video bigger than that in several.
    h.queue(C_STREAM, 1, 20, &Message::Audio(media(300, 0xAF)));
    h.queue(C_VIDEO, 1, 40, &Message::Video(media(10_000, 0x17)));
    h.flush().unwrap();
    assert_eq!(
        h.events(),
        [
            Event::Media(Media {
                kind: MediaKind::Audio,
                timestamp: 20,
                payload: media(300, 0xAF)
            }),
            Event::Media(Media {
                kind: MediaKind::Video,
                timestamp: 40,
                payload: media(10_000, 0x17)
            }),
        ]
    );

    h.call(1, "FCUnpublish", 6.0, vec![s("name")]).unwrap();
    h.call(1, "deleteStream", 7.0, vec![Value::number(1)])
        .unwrap();
    assert_eq!(h.events(), [Event::Unpublished], "ended once, not twice");
    assert_eq!(h.server.role(), Role::Idle);
    assert_eq!(h.server.timers().get(Timer::PublishIdle), None);
}

#[test]
fn delete_stream_alone_ends_publishing() {
    let mut h = publish_flow(usize::MAX);
    h.call(1, "deleteStream", 6.0, vec![Value::number(1)])
        .unwrap();
    assert_eq!(h.events(), [Event::Unpublished]);
}

#[test]
fn handshake_byte_at_a_time_gives_the_same_flow() {
    let mut h = publish_flow(1);
    // Chunks split across reads, one byte each.
    h.queue(C_VIDEO, 1, 0, &Message::Video(media(5000, 1)));
    h.flush_step(1).unwrap();
    assert_eq!(
        h.events(),
        [Event::Media(Media {
            kind: MediaKind::Video,
            timestamp: 0,
            payload: media(5000, 1)
        })]
    );
}

#[test]
fn feed_and_recv_buf_paths_agree() {
    // `feed` is the convenience path; the harness uses recv_buf + handle_input.
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.connect("app").unwrap();
    let expected = h.replies().len();
    let mut other = ServerSession::new(SessionConfig::default(), h.t0);
    other.feed(h.t0, &h.transcript).unwrap();
    assert!(matches!(other.poll_event(), Some(Event::Connected { .. })));
    let out = other.take_output().unwrap();
    assert!(out.len() > 1 + 2 * HANDSHAKE_SIZE);
    assert!(expected >= 4);
}

#[test]
fn media_before_accept_or_on_another_stream_is_dropped() {
    let mut h = Harness::ready(Harness::quiet_config());
    h.call(1, "publish", 3.0, vec![s("cam")]).unwrap();
    h.events();
    h.send(C_VIDEO, 1, &Message::Video(media(10, 1))).unwrap();
    assert!(h.events().is_empty(), "not accepted yet");
    h.server.accept_publish(h.now);
    h.send(C_VIDEO, 2, &Message::Video(media(10, 1))).unwrap();
    h.send(C_STREAM, 1, &Message::Data(vec![s("onTextData"), s("x")]))
        .unwrap();
    assert!(h.events().is_empty(), "wrong stream, not metadata");
    h.send(
        C_STREAM,
        1,
        &Message::Data(vec![s("onMetaData"), Value::Null]),
    )
    .unwrap();
    assert!(matches!(
        h.events()[..],
        [Event::Media(Media {
            kind: MediaKind::Metadata,
            ..
        })]
    ));
}

#[test]
fn reject_publish_says_bad_name() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(1, "publish", 3.0, vec![s("taken")]).unwrap();
    assert_eq!(
        h.events(),
        [Event::PublishRequested {
            stream_id: 1,
            name: "taken".into(),
            query: String::new()
        }]
    );
    h.server.reject_publish("taken is live");
    let replies = h.replies();
    assert_eq!(codes(&replies), ["NetStream.Publish.BadName"]);
    let info = &replies[0].command().unwrap().args[0];
    assert_eq!(info.get("level").and_then(Value::as_str), Some("error"));
    assert_eq!(
        info.get("description").and_then(Value::as_str),
        Some("taken is live")
    );
    assert_eq!(h.server.role(), Role::Idle);
    // Answers only make sense once.
    h.server.reject_publish("again");
    h.server.accept_publish(h.now);
    assert!(h.replies().is_empty());
}

// ---- play flow ----

#[test]
fn play_flow() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(0, "getStreamLength", 3.0, vec![s("cam")]).unwrap();
    assert_eq!(h.replies().len(), 1);
    h.call(1, "play", 0.0, vec![s("cam?token=t"), Value::number(-2000)])
        .unwrap();
    assert_eq!(
        h.events(),
        [Event::PlayRequested {
            stream_id: 1,
            name: "cam".into(),
            query: "token=t".into()
        }]
    );
    h.server.accept_play("cam", true);
    let replies = h.replies();
    assert_eq!(user_controls(&replies), [UserControl::StreamBegin(1)]);
    assert_eq!(
        codes(&replies),
        ["NetStream.Play.Reset", "NetStream.Play.Start"]
    );
    let access = replies.last().unwrap();
    assert_eq!(access.header.stream_id, 1);
    assert_eq!(
        access.message,
        Message::Data(vec![
            s("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true)
        ])
    );
    assert_eq!(h.server.role(), Role::Player(1));
    assert_eq!(h.server.timers().get(Timer::Handshake), None);

    h.server.play_notify(false);
    assert_eq!(codes(&h.replies()), ["NetStream.Play.UnpublishNotify"]);
    h.server.play_notify(true);
    let replies = h.replies();
    assert_eq!(user_controls(&replies), [UserControl::StreamBegin(1)]);
    assert_eq!(codes(&replies), ["NetStream.Play.PublishNotify"]);

    h.call(1, "deleteStream", 4.0, vec![Value::number(1)])
        .unwrap();
    assert_eq!(h.events(), [Event::PlayStopped]);
    h.server.play_notify(true);
    assert!(
        h.replies().is_empty(),
        "no notifications after playback ended"
    );
}

#[test]
fn play_of_an_offline_name_says_unpublished() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(1, "play", 0.0, vec![s("cam")]).unwrap();
    h.server.accept_play("cam", false);
    let replies = h.replies();
    assert_eq!(
        codes(&replies),
        [
            "NetStream.Play.Reset",
            "NetStream.Play.Start",
            "NetStream.Play.UnpublishNotify"
        ]
    );
}

#[test]
fn reject_play_says_failed() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(1, "play", 0.0, vec![s("cam")]).unwrap();
    h.events();
    h.server.reject_play("no such stream");
    assert_eq!(codes(&h.replies()), ["NetStream.Play.Failed"]);
    assert_eq!(h.server.role(), Role::Idle);
}

// ---- control messages ----

#[test]
fn client_ping_is_answered() {
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.send(C_CONTROL, 0, &user_control(UserControl::PingRequest(777)))
        .unwrap();
    assert_eq!(
        user_controls(&h.replies()),
        [UserControl::PingResponse(777)]
    );
    assert!(h.events().is_empty());
}

#[test]
fn acknowledgement_after_the_peer_window() {
    let mut h = Harness::publishing(Harness::quiet_config());
    h.send(C_CONTROL, 0, &Message::WindowAckSize(10_000))
        .unwrap();
    let mut acks = Vec::new();
    for _ in 0..30 {
        h.send(C_VIDEO, 1, &Message::Video(media(1000, 9))).unwrap();
        acks.extend(h.replies().into_iter().filter_map(|r| match r.message {
            Message::Acknowledgement(seq) => Some((seq, h.server.bytes_in())),
            _ => None,
        }));
    }
    h.events();
    // ~31 kB after the window was set, plus the handshake and setup before it.
    assert!(h.server.bytes_in() > 30_000);
    assert!(acks.len() >= 2, "{acks:?}");
    let mut prev = 0;
    for (seq, total) in acks {
        assert!(u64::from(seq) <= total);
        assert!(u64::from(seq) - prev >= 10_000, "one ack per window");
        assert!(u64::from(seq) - prev < 11_100);
        prev = u64::from(seq);
    }
}

#[test]
fn no_acknowledgement_without_a_window() {
    let mut h = Harness::publishing(Harness::quiet_config());
    for _ in 0..10 {
        h.send(C_VIDEO, 1, &Message::Video(media(4000, 9))).unwrap();
    }
    assert!(
        !h.replies()
            .iter()
            .any(|r| matches!(r.message, Message::Acknowledgement(_)))
    );
}
