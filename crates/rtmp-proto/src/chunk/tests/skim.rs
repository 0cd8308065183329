//! [`ChunkReader::skim`] against [`ChunkReader::read`]: the same messages in the same order,
//! with the bodies of skimmed types left out, however the input is split and carried over.

use super::*;

/// Feeds `stream` in pieces the way a driver with one shared read buffer does: each piece is
/// scanned where it lies, and only an unconsumed tail is carried to the next. Returns the
/// messages, the longest tail carried and the tail left at the end.
fn skim_feed(
    reader: &mut ChunkReader,
    stream: &[u8],
    splits: &[usize],
    skip: fn(u8) -> bool,
) -> Result<(Vec<Skimmed>, usize, usize), ChunkError> {
    let (mut out, mut carry, mut longest) = (Vec::new(), Vec::new(), 0);
    let (mut pos, mut i) = (0, 0);
    while pos < stream.len() {
        let n = splits[i % splits.len()].max(1);
        i += 1;
        let end = stream.len().min(pos.saturating_add(n));
        let mut input = std::mem::take(&mut carry);
        input.extend_from_slice(&stream[pos..end]);
        pos = end;
        let mut used = 0;
        loop {
            let (n, found) = reader.skim(&input[used..], skip)?;
            used += n;
            match found {
                Some(m) => out.push(m),
                None => break,
            }
        }
        carry = input[used..].to_vec();
        longest = longest.max(carry.len());
    }
    Ok((out, longest, carry.len()))
}

fn expected(read: Vec<RawMessage>, skip: fn(u8) -> bool) -> Vec<Skimmed> {
    read.into_iter()
        .map(|m| {
            if skip(m.header.type_id) {
                Skimmed::Skipped {
                    header: m.header,
                    len: m.payload.len() as u32,
                }
            } else {
                Skimmed::Message(m)
            }
        })
        .collect()
}

fn media(t: u8) -> bool {
    t == 8 || t == 9
}

fn everything(_: u8) -> bool {
    true
}

fn nothing(_: u8) -> bool {
    false
}

#[test]
fn interleaved_audio_inside_skimmed_video() {
    let stream = regression_input();
    for split in [1, 2, 13, 140, usize::MAX] {
        let mut reader = ChunkReader::new(ReaderLimits::default());
        let (got, _, left) = skim_feed(&mut reader, &stream, &[split], |t| t == 9).unwrap();
        assert_eq!(left, 0);
        assert_eq!(got.len(), 2);
        let Skimmed::Message(audio) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((audio.header.csid, audio.payload.len()), (6, 10));
        assert!(matches!(
            got[1],
            Skimmed::Skipped {
                header: MessageHeader {
                    csid: 4,
                    type_id: 9,
                    ..
                },
                len: 200
            }
        ));
        assert_eq!(reader.buffered(), 0);
    }
}

#[test]
fn limits_still_apply_to_skimmed_messages() {
    let limits = ReaderLimits {
        max_message_size: 100,
        ..ReaderLimits::default()
    };
    let mut reader = ChunkReader::new(limits);
    let header = [0x04, 0, 0, 0, 0, 0, 0xc8, 0x09, 1, 0, 0, 0];
    assert_eq!(
        reader.skim(&header, media),
        Err(ChunkError::MessageTooLarge { len: 200, max: 100 })
    );
    let mut reader = ChunkReader::new(ReaderLimits::default());
    assert_eq!(
        reader.skim(&[0xC4, 1, 2], media),
        Err(ChunkError::NoPreviousHeader(4))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn skim_reads_what_read_reads(
        specs in prop::collection::vec(spec(), 1..16),
        cs in chunk_size(),
        picks in prop::collection::vec(any::<usize>(), 1..32),
        splits in splits(),
        repeat_ext in any::<bool>(),
        which in 0usize..3,
    ) {
        let skip = [media, everything, nothing][which];
        let mut enc = CompressingEncoder::new(cs as usize, repeat_ext);
        let fill = if repeat_ext { None } else { Some(0xEE) };
        let messages: Vec<Encoded> = materialize(&specs, fill)
            .into_iter()
            .map(|(header, payload, compress)| {
                let chunks = enc.encode(&header, &payload, compress);
                Encoded { header, payload, chunks }
            })
            .collect();
        let stream = interleave(&messages, &picks);
        prop_assume!(!enc.ambiguous);
        let mut reader = ChunkReader::new(big_limits());
        reader.set_chunk_size(cs).unwrap();
        let want = expected(feed(&mut reader, &stream, &[usize::MAX]), skip);

        let mut skimmer = ChunkReader::new(big_limits());
        skimmer.set_chunk_size(cs).unwrap();
        let (got, longest, left) = skim_feed(&mut skimmer, &stream, &splits, skip).unwrap();
        prop_assert_eq!(left, 0);
        prop_assert_eq!(got, want);
        prop_assert_eq!(skimmer.buffered(), 0);
        if which == 1 {
            // Nothing is read whole: at most a chunk header (and a peeked extended
            // timestamp) is ever carried.
            prop_assert!(longest < 18 + 4, "carried {}", longest);
        }
    }

    #[test]
    fn skimming_arbitrary_input_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        cs in prop_oneof![Just(1u32), Just(128), Just(MAX_CHUNK_SIZE)],
        splits in splits(),
    ) {
        let limits = ReaderLimits { max_message_size: 4096, max_chunk_streams: 8, max_buffered: 8192 };
        let mut reader = ChunkReader::new(limits);
        reader.set_chunk_size(cs).unwrap();
        if let Ok((got, _, _)) = skim_feed(&mut reader, &data, &splits, media) {
            for m in got {
                if let Skimmed::Message(m) = m {
                    prop_assert!(m.payload.len() <= 4096);
                }
            }
        }
        prop_assert!(reader.buffered() <= 8192);
    }
}
