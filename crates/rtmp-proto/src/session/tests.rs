//! Deterministic session tests: a scripted client, an explicit clock, no sockets.

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

// ---- timers ----

#[test]
fn handshake_timeout_when_nothing_happens() {
    let mut h = Harness::new(SessionConfig::default());
    assert_eq!(h.server.poll_timeout(), Some(h.at(10.0)));
    assert_eq!(h.server.handle_timeout(h.at(9.999)), None);
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert_eq!(h.now, h.at(10.0));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn handshake_timeout_covers_connect_without_publish() {
    let mut h = Harness::ready(Harness::quiet_config());
    h.advance(Duration::from_secs(3));
    h.call(0, "FCPublish", 5.0, vec![s("cam")]).unwrap();
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.at(10.0)),
        "bytes do not push it back"
    );
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn publish_idle_counts_from_the_last_byte() {
    let mut h = Harness::ready(Harness::quiet_config());
    h.advance(Duration::from_secs(2));
    h.call(1, "publish", 3.0, vec![s("cam")]).unwrap();
    h.events();
    h.advance(Duration::from_secs(1));
    h.server.accept_publish(h.now);
    // A publisher that never sends media is caught too: counted from the accept.
    assert_eq!(h.server.poll_timeout(), Some(h.at(33.0)));

    h.advance(Duration::from_secs(20));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.poll_timeout(), Some(h.at(53.0)));
    assert_eq!(h.server.handle_timeout(h.at(52.9)), None);

    h.advance(Duration::from_secs(29));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.poll_timeout(), Some(h.at(82.0)));
    assert_eq!(h.jump(), Some(CloseReason::PublishIdle));
    assert_eq!(h.now, h.at(82.0));
}

#[test]
fn ping_after_silence_then_timeout() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(1, "play", 0.0, vec![s("cam")]).unwrap();
    h.server.accept_play("cam", true);
    h.replies();
    // The last byte came at t0; the ping interval is 5 s.
    assert_eq!(h.server.poll_timeout(), Some(h.at(5.0)));
    assert_eq!(h.jump(), None);
    let replies = h.replies();
    assert_eq!(user_controls(&replies), [UserControl::PingRequest(5000)]);
    assert_eq!(replies[0].header.csid, CSID_CONTROL);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), Some(h.at(15.0)));
    assert_eq!(h.server.poll_timeout(), Some(h.at(15.0)));
    assert_eq!(h.jump(), Some(CloseReason::PingTimeout));
    assert_eq!(h.now, h.at(15.0));
}

#[test]
fn ping_response_cancels_the_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None);
    let [UserControl::PingRequest(ts)] = user_controls(&h.replies())[..] else {
        panic!()
    };
    h.advance(Duration::from_secs(2));
    h.send(C_CONTROL, 0, &user_control(UserControl::PingResponse(ts)))
        .unwrap();
    assert_eq!(h.events(), [Event::PingResponse(ts)]);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    // Next ping a full interval after that byte.
    assert_eq!(h.server.poll_timeout(), Some(h.at(12.0)));
    assert_eq!(h.jump(), None);
    assert_eq!(
        user_controls(&h.replies()),
        [UserControl::PingRequest(12_000)]
    );
}

#[test]
fn any_byte_cancels_the_ping_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None);
    h.replies();
    h.advance(Duration::from_secs(9));
    h.send(C_CONTROL, 0, &Message::Acknowledgement(1)).unwrap();
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(19.0)));
}

#[test]
fn explicit_ping_does_not_push_back_an_outstanding_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    h.server.send_ping(h.at(1.0));
    h.server.send_ping(h.at(4.0));
    assert_eq!(h.server.timers().get(Timer::PingTimeout), Some(h.at(11.0)));
    assert_eq!(
        user_controls(&h.replies()),
        [
            UserControl::PingRequest(1000),
            UserControl::PingRequest(4000)
        ]
    );
}

#[test]
fn publishers_are_judged_by_publish_idle_not_pings() {
    let mut h = Harness::publishing(SessionConfig::default());
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    h.advance(Duration::from_secs(1));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(31.0)));
    assert_eq!(h.jump(), Some(CloseReason::PublishIdle));
    assert!(h.replies().is_empty(), "never pinged");
}

#[test]
fn a_connection_that_stopped_publishing_gets_the_handshake_deadline_again() {
    // Publishing disarmed the handshake deadline; once the publish ends, a silent connection
    // must still have a deadline, or it lingers forever.
    let mut h = Harness::publishing(SessionConfig::default());
    h.advance(Duration::from_secs(1));
    h.call(1, "deleteStream", 4.0, vec![Value::number(1)])
        .unwrap();
    assert_eq!(h.events(), [Event::Unpublished]);
    assert_eq!(h.server.timers().get(Timer::PublishIdle), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert!(user_controls(&h.replies()).is_empty(), "never pinged");
}

#[test]
fn a_connection_that_stopped_playing_is_no_longer_pinged() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None, "a player is pinged");
    assert_eq!(user_controls(&h.replies()).len(), 1);
    h.advance(Duration::from_secs(1));
    h.call(1, "closeStream", 0.0, vec![]).unwrap();
    assert_eq!(h.events(), [Event::PlayStopped]);
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(16.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn connections_without_a_stream_are_never_pinged() {
    // Thousands of connected but idle clients must cost no wake-ups: the handshake deadline
    // alone bounds them, however long an operator sets it.
    let mut config = SessionConfig::default();
    config.timeouts.handshake = Duration::from_secs(3600);
    let mut h = Harness::ready(config);
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(3600.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert!(h.replies().is_empty());
}

#[test]
fn play_stall_follows_write_progress() {
    let mut h = Harness::playing(Harness::quiet_config());
    h.server.on_write_state(h.at(1.0), true, false);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    // Still stuck: the deadline stays where it was.
    h.server.on_write_state(h.at(5.0), true, false);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    // Progress restarts it.
    h.server.on_write_state(h.at(6.0), true, true);
    assert_eq!(h.server.poll_timeout(), Some(h.at(16.0)));
    // Drained: cleared.
    h.server.on_write_state(h.at(7.0), false, true);
    assert_eq!(h.server.poll_timeout(), None);

    h.server.on_write_state(h.at(8.0), true, false);
    assert_eq!(h.server.handle_timeout(h.at(17.9)), None);
    h.now = h.at(8.0);
    assert_eq!(h.jump(), Some(CloseReason::PlayStall));
    assert_eq!(h.now, h.at(18.0));
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

// ---- errors ----

fn is_unexpected(err: &ProtocolError, command: &str) -> bool {
    matches!(err, ProtocolError::UnexpectedCommand { name, .. } if name == command)
}

#[test]
fn command_before_connect_is_refused() {
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    let err = h.call(0, "createStream", 2.0, vec![]).unwrap_err();
    assert!(is_unexpected(&err, "createStream"), "{err:?}");
}

#[test]
fn connect_needs_an_app_and_happens_once() {
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    let err = h.call(0, "connect", 1.0, vec![]).unwrap_err();
    assert!(is_unexpected(&err, "connect"), "{err:?}");

    let mut h = Harness::ready(SessionConfig::default());
    let err = h.connect("again").unwrap_err();
    assert!(is_unexpected(&err, "connect"), "{err:?}");
}

#[test]
fn publish_on_a_stream_never_created() {
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.connect("live").unwrap();
    let err = h.call(1, "publish", 2.0, vec![s("cam")]).unwrap_err();
    assert!(is_unexpected(&err, "publish"), "{err:?}");

    let mut h = Harness::ready(SessionConfig::default());
    let err = h.call(2, "play", 2.0, vec![s("cam")]).unwrap_err();
    assert!(is_unexpected(&err, "play"), "{err:?}");
    let mut h = Harness::ready(SessionConfig::default());
    let err = h.call(1, "publish", 2.0, vec![]).unwrap_err();
    assert!(is_unexpected(&err, "publish"), "no name: {err:?}");
}

#[test]
fn second_publish_or_play_is_refused() {
    let mut h = Harness::publishing(SessionConfig::default());
    let err = h.call(1, "play", 4.0, vec![s("cam")]).unwrap_err();
    assert!(is_unexpected(&err, "play"), "{err:?}");
}

#[test]
fn too_many_streams() {
    let mut h = Harness::ready(SessionConfig::default());
    for i in 1..MAX_STREAMS {
        h.call(0, "createStream", f64::from(i), vec![]).unwrap();
    }
    assert_eq!(
        h.call(0, "createStream", 99.0, vec![]),
        Err(ProtocolError::TooManyStreams)
    );
}

#[test]
fn unknown_command_is_a_protocol_error() {
    let mut h = Harness::ready(SessionConfig::default());
    assert_eq!(
        h.call(0, "formatHardDisk", 3.0, vec![]),
        Err(ProtocolError::UnknownCommand("formatHardDisk".into()))
    );
}

#[test]
fn harmless_commands_without_transaction_are_not_answered() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(0, "FCSubscribe", 0.0, vec![s("cam")]).unwrap();
    h.call(0, "onBWDone", 5.0, vec![]).unwrap();
    assert!(h.replies().is_empty());
}

#[test]
fn garbage_after_handshake_is_an_error() {
    // fmt 3 on a chunk stream that never had a header.
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.to_server.extend_from_slice(&[0xC5, 1, 2, 3]);
    assert_eq!(
        h.flush(),
        Err(ProtocolError::Chunk(ChunkError::NoPreviousHeader(5)))
    );

    // A well-formed chunk carrying a command that is not AMF0.
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.to_server.extend_from_slice(&[
        0x03,
        0,
        0,
        0,
        0,
        0,
        4,
        type_id::COMMAND_AMF0,
        0,
        0,
        0,
        0,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
    ]);
    assert!(matches!(h.flush(), Err(ProtocolError::Message(_))));

    // A message longer than the reader allows.
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    h.to_server
        .extend_from_slice(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
    assert!(matches!(
        h.flush(),
        Err(ProtocolError::Chunk(ChunkError::MessageTooLarge { .. }))
    ));

    // Set Chunk Size 0.
    let mut h = Harness::new(SessionConfig::default());
    h.handshake(usize::MAX);
    assert_eq!(
        h.send(C_CONTROL, 0, &Message::SetChunkSize(0)),
        Err(ProtocolError::Chunk(ChunkError::InvalidChunkSize(0)))
    );
}

#[test]
fn bad_version_byte() {
    let t0 = Instant::now();
    for first in [0u8, 6, 0x16, 0xFF] {
        let mut server = ServerSession::new(SessionConfig::default(), t0);
        assert_eq!(
            server.feed(t0, &[first, 0, 0, 0]),
            Err(ProtocolError::Handshake(
                HandshakeError::UnsupportedVersion(first)
            ))
        );
        assert!(server.take_output().is_none());
    }
}

#[test]
fn hostile_bytes_never_panic() {
    // Cheap deterministic noise after a valid handshake, fed in odd-sized reads.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut h = Harness::new(SessionConfig::default());
        h.handshake(usize::MAX);
        let mut noise = Vec::new();
        for _ in 0..(round * 7 % 600) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            noise.push((seed >> 24) as u8);
        }
        h.to_server.extend_from_slice(&noise);
        let _ = h.flush_step(1 + round % 13);
        let _ = h.server.handle_timeout(h.at(100.0));
    }
}

/// Writes the byte stream of a real plain handshake + connect + publish (+ a little media) for
/// the fuzz corpus. The `session` fuzz target reads a flags byte first (0 = as is, all at once).
#[test]
#[ignore = "writes fuzz corpus files; run by hand"]
fn write_fuzz_corpus() {
    let mut h = publish_flow(usize::MAX);
    h.queue(
        C_STREAM,
        1,
        0,
        &Message::Data(vec![
            s("@setDataFrame"),
            s("onMetaData"),
            Value::ecma_array([("duration", Value::number(0))]),
        ]),
    );
    h.queue(C_STREAM, 1, 0, &Message::Audio(media(7, 0xAF)));
    h.queue(C_VIDEO, 1, 0, &Message::Video(media(200, 0x17)));
    h.call(1, "deleteStream", 6.0, vec![Value::number(1)])
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let session = root.join("session");
    std::fs::create_dir_all(&session).unwrap();
    let transcript = &h.transcript;
    let stream = &transcript[1 + 2 * HANDSHAKE_SIZE..];
    // Flags: bit 0 synthetic handshake, bits 1-3 read size, bits 4-7 clock tick (see fuzzing.rs).
    let seeds: [(&str, u8, &[u8]); 4] = [
        ("publish-plain", 0x00, transcript),
        ("publish-bytewise", 0x02, transcript),
        ("publish-synthetic-handshake", 0x01, stream),
        ("publish-slow-reads", 0x01 | (6 << 1) | (2 << 4), stream),
    ];
    for (name, flags, bytes) in seeds {
        let mut file = vec![flags];
        file.extend_from_slice(bytes);
        std::fs::write(session.join(name), &file).unwrap();
    }
    let handshake = root.join("handshake");
    std::fs::create_dir_all(&handshake).unwrap();
    std::fs::write(
        handshake.join("plain-c0c1c2-connect"),
        &transcript[..1 + 2 * HANDSHAKE_SIZE + 200],
    )
    .unwrap();
    // The chunk stream alone (after C0+C1+C2), behind the chunk_reader target's size byte.
    let chunk = root.join("chunk_reader");
    std::fs::create_dir_all(&chunk).unwrap();
    let mut file = vec![0u8];
    file.extend_from_slice(stream);
    std::fs::write(chunk.join("publish-stream"), &file).unwrap();
}
