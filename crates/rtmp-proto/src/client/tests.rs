//! Deterministic client session tests: a [`ClientSession`] against our own [`ServerSession`]
//! in memory, seeded handshakes, an explicit clock.

mod answers;
mod play;
mod props;
mod timers;
mod util;

use super::*;
use crate::amf0::Value;
use crate::handshake::ServerHandshake;
use crate::message::Command;
use crate::session::{Event, Media, ProtocolError, SessionConfig};
use util::*;

pub(super) fn status_codes(events: &[ClientEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } | ClientEvent::Refused { code, .. } => {
                Some(code.as_str())
            }
            _ => None,
        })
        .collect()
}

/// The publish conversation, reads of `step` bytes; returns the pair once publishing.
fn publish_flow(step: usize) -> Pair {
    let mut p = Pair::new(config());
    p.step = step;
    assert_eq!(p.client.state(), ClientState::Handshake);
    // Asked for at once: sent when connect and createStream are answered.
    p.client.publish(p.now, "cam?key=abc").unwrap();
    p.pump();
    assert_eq!(
        p.events(),
        [
            ClientEvent::Connected {
                server_version: Some("FMS/3,0,1,123".into())
            },
            ClientEvent::StreamCreated(1),
            ClientEvent::Publishing,
        ]
    );
    assert_eq!(p.client.state(), ClientState::Publishing(1));
    assert_eq!(
        p.server_events(),
        [
            Event::Connected {
                app: "live".into(),
                tc_url: Some("rtmp://127.0.0.1:1935/live".into())
            },
            Event::PublishRequested {
                stream_id: 1,
                name: "cam".into(),
                query: "key=abc".into()
            },
        ]
    );
    assert_eq!(
        p.commands_sent(),
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish"
        ]
    );
    // Both sides announced 4096 and follow each other.
    assert_eq!(p.server.in_chunk_size(), 4096);
    assert_eq!(p.client.in_chunk_size(), 4096);
    assert_eq!(p.client.timers().get(ClientTimer::Setup), None);
    p
}

fn send_some_media(p: &mut Pair) -> Vec<Media> {
    let meta = Value::ecma_array([("width", Value::number(1280))]);
    p.client.send_metadata(0, &meta).unwrap();
    p.client
        .send_media(MediaKind::Audio, 20, &media(300, 0xAF))
        .unwrap();
    // Bigger than a chunk: several chunks.
    p.client
        .send_media(MediaKind::Video, 40, &media(10_000, 0x17))
        .unwrap();
    p.pump();
    let (_, on_metadata) = Message::on_metadata(meta).encode();
    let expected = vec![
        Media {
            kind: MediaKind::Metadata,
            timestamp: 0,
            payload: on_metadata,
        },
        Media {
            kind: MediaKind::Audio,
            timestamp: 20,
            payload: media(300, 0xAF),
        },
        Media {
            kind: MediaKind::Video,
            timestamp: 40,
            payload: media(10_000, 0x17),
        },
    ];
    assert_eq!(p.server_media_events(), expected);
    expected
}

#[test]
fn connect_publish_and_media_reaches_the_server() {
    let mut p = publish_flow(usize::MAX);
    send_some_media(&mut p);

    p.client.close_stream().unwrap();
    p.pump();
    assert_eq!(p.commands_sent(), ["FCUnpublish", "deleteStream"]);
    assert_eq!(p.server_events(), [Event::Unpublished]);
    assert_eq!(p.client.state(), ClientState::Connected);
    assert_eq!(
        p.client.send_media(MediaKind::Audio, 0, b"x"),
        Err(ClientError::NotPublishing)
    );
}

#[test]
fn byte_at_a_time_gives_the_same_conversation() {
    let mut p = publish_flow(1);
    send_some_media(&mut p);
}

#[test]
fn create_stream_first_then_publish() {
    let mut p = Pair::new(config());
    p.pump();
    assert_eq!(p.client.state(), ClientState::Connected);
    p.client.create_stream(p.now).unwrap();
    p.pump();
    assert_eq!(p.client.stream_id(), Some(1));
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    let events = p.events();
    assert_eq!(
        events[1..],
        [ClientEvent::StreamCreated(1), ClientEvent::Publishing]
    );
    assert_eq!(
        p.commands_sent(),
        [
            "connect",
            "createStream",
            "releaseStream",
            "FCPublish",
            "publish"
        ]
    );
    assert_eq!(p.client.publish(p.now, "again"), Err(ClientError::Busy));
}

#[test]
fn connect_carries_the_configured_properties() {
    let mut cfg = config();
    cfg.flash_ver = "LNX 9,0,124,2".into();
    cfg.connect_properties = vec![
        ("type".into(), Value::string("private")),
        ("pageUrl".into(), Value::string("https://example.test/")),
    ];
    let mut p = Pair::new(cfg);
    p.pump();
    let sent = p.sent();
    let Some(Message::Command(connect)) = sent.iter().find(|m| matches!(m, Message::Command(_)))
    else {
        panic!("no connect in {sent:?}")
    };
    let props = connect.command_object.properties().unwrap();
    let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["app", "type", "flashVer", "tcUrl", "pageUrl"]);
    assert_eq!(
        connect.command_object.get("type"),
        Some(&Value::string("private"))
    );
    assert_eq!(
        connect.command_object.get("flashVer"),
        Some(&Value::string("LNX 9,0,124,2"))
    );
    // Set Chunk Size goes out before connect; the window answers Set Peer Bandwidth.
    assert_eq!(sent[0], Message::SetChunkSize(4096));
    assert!(sent.contains(&Message::WindowAckSize(2_500_000)));
}

#[test]
fn pings_are_answered_both_ways() {
    let mut p = Pair::playing(config());
    p.server.send_ping(p.at(2.0));
    p.pump();
    assert_eq!(p.server_events(), [Event::PingResponse(2000)]);
    assert!(
        p.sent()
            .contains(&Message::UserControl(UserControl::PingResponse(2000)))
    );

    let ts = p.client.send_ping(p.at(3.5)).unwrap();
    assert_eq!(ts, 3500);
    p.pump();
    assert_eq!(p.events(), [ClientEvent::PingResponse(3500)]);
}

#[test]
fn acknowledges_the_server_window() {
    let server = SessionConfig {
        window_ack_size: 10_000,
        ..SessionConfig::default()
    };
    let mut p = Pair::with_server(config(), server);
    p.client.play(p.now, "cam").unwrap();
    p.pump();
    p.sent();
    for i in 0..30 {
        p.server_media(MediaKind::Video, i * 40, &media(1000, 9));
    }
    p.pump();
    let acks: Vec<u32> = p
        .sent()
        .into_iter()
        .filter_map(|m| match m {
            Message::Acknowledgement(seq) => Some(seq),
            _ => None,
        })
        .collect();
    assert!(acks.len() >= 2, "{acks:?}");
    for pair in acks.windows(2) {
        assert!(
            pair[1] - pair[0] >= 10_000 && pair[1] - pair[0] < 11_100,
            "{acks:?}"
        );
    }
    assert!(u64::from(*acks.last().unwrap()) <= p.client.bytes_in());
}

#[test]
fn chunk_size_changes_both_ways() {
    let server = SessionConfig {
        chunk_size: 60_000,
        ..SessionConfig::default()
    };
    let mut cfg = config();
    cfg.chunk_size = 128;
    let mut p = Pair::with_server(cfg, server);
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    assert_eq!(p.client.in_chunk_size(), 60_000);
    assert_eq!(
        p.server.in_chunk_size(),
        128,
        "128 is the default: not announced"
    );
    p.server_events();
    for size in [1, 7, 0x7FFF_FFFF, 4096] {
        p.client.set_chunk_size(size).unwrap();
        p.client
            .send_media(MediaKind::Video, 0, &media(700, 0x17))
            .unwrap();
        p.pump();
        assert_eq!(p.server.in_chunk_size(), size);
        assert_eq!(p.server_media_events().len(), 1, "at chunk size {size}");
    }
    assert_eq!(
        p.client.set_chunk_size(0),
        Err(ClientError::InvalidChunkSize(0))
    );
    assert_eq!(
        p.client.set_chunk_size(0x8000_0000),
        Err(ClientError::InvalidChunkSize(0x8000_0000))
    );
}

#[test]
fn nothing_is_sent_before_the_handshake_is_over() {
    let mut p = Pair::new(config());
    assert_eq!(p.client.send_ping(p.now), Err(ClientError::Handshaking));
    assert_eq!(
        p.client.send_media(MediaKind::Audio, 0, b"x"),
        Err(ClientError::NotPublishing)
    );
    // A chunk size set now is announced right after C2.
    p.client.set_chunk_size(1000).unwrap();
    p.pump();
    assert_eq!(p.server.in_chunk_size(), 1000);
}

/// Rewrites the seed corpus of the `client_session` fuzz target from real server transcripts
/// (`cargo test -p rtmp-proto -- --ignored write_client_fuzz_corpus`).
#[test]
#[ignore = "writes fuzz corpus files; run by hand"]
fn write_client_fuzz_corpus() {
    let mut publish = publish_flow(usize::MAX);
    send_some_media(&mut publish);
    publish.server.send_ping(publish.at(1.0));
    publish.pump();

    let mut play = Pair::playing(config());
    play.server_media(MediaKind::Video, 0, &media(5000, 0x17));
    play.server_media(MediaKind::Audio, 20, &media(40, 0xAF));
    play.server.play_notify(false);
    play.pump();

    let mut refused = Pair::new(config());
    refused.publish = Answer::Reject("cam is already live");
    refused.client.publish(refused.now, "cam").unwrap();
    refused.pump();

    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_session");
    std::fs::create_dir_all(&dir).unwrap();
    let handshake = 1 + 2 * crate::handshake::HANDSHAKE_SIZE;
    // Flags: bit 0 synthetic S0+S1+S2, bit 1 headers only, bit 2 play, bits 3-5 read size.
    let seeds: [(&str, u8, &[u8]); 5] = [
        ("publish-plain", 0x00, &publish.from_server),
        ("publish-bytewise", 1 << 3, &publish.from_server),
        ("play-full", 0x04, &play.from_server),
        (
            "play-headers-only-synthetic-handshake",
            0x01 | 0x02 | 0x04 | (6 << 3),
            &play.from_server[handshake..],
        ),
        ("refused-publish", 0x00, &refused.from_server),
    ];
    for (name, flags, bytes) in seeds {
        let mut file = vec![flags];
        file.extend_from_slice(bytes);
        std::fs::write(dir.join(name), &file).unwrap();
    }
}
