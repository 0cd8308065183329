//! Properties over random splits, sizes and garbage: the session reads the same thing however
//! the bytes arrive, and never panics on what a server sends.

use super::*;
use proptest::prelude::*;

/// Plays, then receives `sizes` as video messages delivered `step` bytes per read; returns
/// what the client reported as (kind, timestamp, length).
fn play_run(mode: MediaMode, chunk_size: u32, sizes: &[usize], step: usize) -> Vec<(u32, u32)> {
    let mut cfg = config();
    cfg.media = mode;
    let server = SessionConfig {
        chunk_size,
        ..SessionConfig::default()
    };
    let mut p = Pair::with_server(cfg, server);
    p.client.play(p.now, "cam").unwrap();
    p.pump();
    p.events();
    p.step = step;
    let mut bytes = Vec::new();
    let mut writer = ChunkWriter::default();
    writer.set_chunk_size(chunk_size);
    for (i, &len) in sizes.iter().enumerate() {
        let header = MessageHeader {
            csid: if i % 2 == 0 { 6 } else { 7 },
            timestamp: i as u32 * 40,
            type_id: crate::message::type_id::VIDEO,
            stream_id: 1,
        };
        bytes.extend_from_slice(&writer.encode(&header, &vec![0x17; len]));
    }
    p.deliver(&bytes);
    p.events()
        .into_iter()
        .map(|e| match e {
            ClientEvent::Media(m) => (m.timestamp, m.payload.len() as u32),
            ClientEvent::MediaHeader(h) => (h.timestamp, h.len),
            other => panic!("{other:?}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn media_reads_the_same_however_it_is_split(
        sizes in proptest::collection::vec(0usize..20_000, 1..8),
        chunk_size in prop_oneof![Just(128u32), Just(4096), 1u32..300],
        step in 1usize..5000,
    ) {
        let expected: Vec<(u32, u32)> =
            sizes.iter().enumerate().map(|(i, &l)| (i as u32 * 40, l as u32)).collect();
        for mode in [MediaMode::Full, MediaMode::HeadersOnly] {
            prop_assert_eq!(&play_run(mode, chunk_size, &sizes, step), &expected);
        }
    }

    #[test]
    fn garbage_after_the_handshake_never_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        headers_only in any::<bool>(),
    ) {
        let mut cfg = config();
        if headers_only {
            cfg.media = MediaMode::HeadersOnly;
        }
        let mut p = Pair::new(cfg);
        p.client.play(p.now, "cam").unwrap();
        p.pump();
        for piece in garbage.chunks(7) {
            if p.client.feed(p.now, piece).is_err() {
                break;
            }
        }
        while p.client.poll_event().is_some() {}
        let _ = p.client.handle_timeout(p.at(1000.0));
    }
}
