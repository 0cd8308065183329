//! AV1 (`ffmpeg -f obu`, low-overhead OBUs) and Opus (`ffmpeg -f ogg`) into Enhanced RTMP
//! tags, because Debian's ffmpeg 5.1 cannot put either into FLV.

use super::Tag;
use bytes::Bytes;
use lifeline_hls::FrameKind;

/// (type, whole OBU) of each OBU; every OBU must carry its size, as ffmpeg writes them.
fn obus(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some(&header) = data.first() {
        assert!(header & 0x02 != 0, "OBU without a size field");
        let ext = usize::from(header & 0x04 != 0);
        let (mut size, mut n) = (0usize, 0);
        loop {
            let b = data[1 + ext + n];
            size |= usize::from(b & 0x7f) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let len = 1 + ext + n + size;
        out.push(((header >> 3) & 0x0f, &data[..len]));
        data = &data[len..];
    }
    out
}

/// AV1 tags: a SequenceStart whose `av1C` carries the stream's sequence header (8-bit 4:2:0
/// main profile, level 2.0, as libaom writes 320x240), then one CodedFrames tag per temporal
/// unit, with its temporal delimiter left in. Temporal units with a sequence header are the
/// keyframes (libaom repeats it on each).
pub(crate) fn av1_tags(data: &[u8], fps: u32) -> Vec<Tag> {
    let all = obus(data);
    let seq = all
        .iter()
        .find(|(t, _)| *t == 1)
        .expect("sequence header")
        .1;
    let mut start = b"\x90av01\x81\x00\x0c\x00".to_vec();
    start.extend_from_slice(seq);
    let mut tags = vec![Tag {
        kind: FrameKind::Video,
        timestamp: 0,
        body: Bytes::from(start),
    }];
    let mut units: Vec<Vec<(u8, &[u8])>> = Vec::new();
    for obu in all {
        if obu.0 == 2 || units.is_empty() {
            units.push(Vec::new());
        }
        units.last_mut().expect("a unit").push(obu);
    }
    for (n, unit) in units.iter().enumerate() {
        let key = unit.iter().any(|(t, _)| *t == 1);
        let mut body = vec![if key { 0x91 } else { 0xa1 }];
        body.extend_from_slice(b"av01");
        for (_, obu) in unit {
            body.extend_from_slice(obu);
        }
        tags.push(Tag {
            kind: FrameKind::Video,
            timestamp: n as u32 * 1000 / fps,
            body: Bytes::from(body),
        });
    }
    tags
}

/// Opus tags from an Ogg Opus file: the ID header as SequenceStart, then each audio packet
/// (20 ms each, libopus' default) as CodedFrames.
pub(crate) fn opus_tags(data: &[u8]) -> Vec<Tag> {
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at + 27 <= data.len() {
        assert_eq!(&data[at..at + 4], b"OggS");
        let segments = usize::from(data[at + 26]);
        let lacing = &data[at + 27..at + 27 + segments];
        let mut body = at + 27 + segments;
        for &l in lacing {
            current.extend_from_slice(&data[body..body + usize::from(l)]);
            body += usize::from(l);
            if l < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = body;
    }
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    let mut head = b"\x90Opus".to_vec();
    head.extend_from_slice(&packets[0]);
    let mut tags = vec![Tag {
        kind: FrameKind::Audio,
        timestamp: 0,
        body: Bytes::from(head),
    }];
    for (n, p) in packets[2..].iter().enumerate() {
        let mut body = b"\x91Opus".to_vec();
        body.extend_from_slice(p);
        tags.push(Tag {
            kind: FrameKind::Audio,
            timestamp: n as u32 * 20,
            body: Bytes::from(body),
        });
    }
    tags
}

/// Interleaves two tag lists by timestamp, as a publisher sends them.
pub(crate) fn interleave(a: Vec<Tag>, b: Vec<Tag>) -> Vec<Tag> {
    let mut all: Vec<Tag> = a.into_iter().chain(b).collect();
    all.sort_by_key(|t| t.timestamp);
    all
}
