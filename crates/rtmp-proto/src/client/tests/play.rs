//! A player: media, metadata and aggregates in both media modes, and the end of a stream.

use super::*;

#[test]
fn play_receives_media_and_metadata() {
    let mut p = Pair::new(config());
    p.client.play(p.now, "cam?token=t").unwrap();
    p.pump();
    let events = p.events();
    assert_eq!(status_codes(&events), ["NetStream.Play.Reset"]);
    assert!(events.ends_with(&[ClientEvent::Playing]), "{events:?}");
    assert!(p.server_events().contains(&Event::PlayRequested {
        stream_id: 1,
        name: "cam".into(),
        query: "token=t".into()
    }));
    let sent = p.sent();
    assert!(
        sent.contains(&Message::UserControl(UserControl::SetBufferLength {
            stream_id: 1,
            millis: 1000
        }))
    );

    let meta = Message::on_metadata(Value::ecma_array([("fps", Value::number(30))]));
    let (_, meta_body) = meta.encode();
    p.server_media(MediaKind::Metadata, 0, &meta_body);
    p.server_media(MediaKind::Video, 0, &media(9000, 0x17));
    p.server_media(MediaKind::Audio, 23, &media(200, 0xAF));
    assert_eq!(
        p.events(),
        [
            ClientEvent::Media(Media {
                kind: MediaKind::Metadata,
                timestamp: 0,
                payload: meta_body
            }),
            ClientEvent::Media(Media {
                kind: MediaKind::Video,
                timestamp: 0,
                payload: media(9000, 0x17)
            }),
            ClientEvent::Media(Media {
                kind: MediaKind::Audio,
                timestamp: 23,
                payload: media(200, 0xAF)
            }),
        ]
    );
}

#[test]
fn headers_only_reports_lengths_and_keeps_no_bodies() {
    let mut cfg = config();
    cfg.media = MediaMode::HeadersOnly;
    let mut p = Pair::playing(cfg);
    p.server_media(MediaKind::Video, 0, &media(9000, 0x17));
    p.step = 1000;
    p.server_media(MediaKind::Audio, 23, &media(200, 0xAF));
    p.server_media(MediaKind::Video, 33, &media(40_000, 0x27));
    assert_eq!(
        p.events(),
        [
            ClientEvent::MediaHeader(MediaHeader {
                kind: MediaKind::Video,
                timestamp: 0,
                len: 9000
            }),
            ClientEvent::MediaHeader(MediaHeader {
                kind: MediaKind::Audio,
                timestamp: 23,
                len: 200
            }),
            ClientEvent::MediaHeader(MediaHeader {
                kind: MediaKind::Video,
                timestamp: 33,
                len: 40_000
            }),
        ]
    );
    assert!(p.client.recv_buf().is_empty(), "nothing carried over");
    // Control traffic still works in this mode.
    let ts = p.client.send_ping(p.at(1.0)).unwrap();
    p.pump();
    assert_eq!(p.events(), [ClientEvent::PingResponse(ts)]);
}

#[test]
fn aggregates_are_split_into_their_tags() {
    let mut p = Pair::playing(config());
    let mut body = Vec::new();
    for (ty, ts, len) in [
        (9u8, 1000u32, 5usize),
        (8, 1020, 3),
        (18, 1020, 2),
        (9, 1040, 4),
    ] {
        body.push(ty);
        body.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.push((ts >> 24) as u8);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend(std::iter::repeat_n(ty, len));
        body.extend_from_slice(&(11 + len as u32).to_be_bytes());
    }
    // A truncated tag at the end is dropped, what precedes it kept.
    body.extend_from_slice(&[9, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 1]);
    let header = MessageHeader {
        csid: 7,
        timestamp: 5000,
        type_id: crate::message::type_id::AGGREGATE,
        stream_id: 1,
    };
    p.deliver(&ChunkWriter::default().encode(&header, &body));
    let got: Vec<(MediaKind, u32, usize)> = p
        .events()
        .into_iter()
        .map(|e| match e {
            ClientEvent::Media(m) => (m.kind, m.timestamp, m.payload.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (MediaKind::Video, 5000, 5),
            (MediaKind::Audio, 5020, 3),
            (MediaKind::Video, 5040, 4)
        ]
    );
}

#[test]
fn stream_end_is_reported_once_per_run() {
    let mut p = Pair::playing(config());
    p.server.play_notify(false);
    p.pump();
    assert_eq!(
        p.events(),
        [ClientEvent::StreamEnded(StreamEnd::Unpublished)]
    );
    p.server.play_notify(false);
    p.pump();
    assert!(p.events().is_empty(), "already reported");
    p.server.play_notify(true);
    p.pump();
    assert_eq!(status_codes(&p.events()), ["NetStream.Play.PublishNotify"]);
    p.server.play_notify(false);
    p.pump();
    assert_eq!(
        p.events(),
        [ClientEvent::StreamEnded(StreamEnd::Unpublished)]
    );
}
