//! What closes a session with a protocol error, and hostile input that must never panic.

use super::*;

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
