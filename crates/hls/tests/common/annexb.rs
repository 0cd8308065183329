//! Raw HEVC (Annex B, as `ffmpeg -f hevc` writes it) into Enhanced RTMP video tags, because
//! Debian's ffmpeg 5.1 cannot write HEVC into FLV: a SequenceStart with an `hvcC` built from
//! the VPS/SPS/PPS, then one CodedFramesX tag per access unit (split at AUD NAL units,
//! `-x265-params aud=1`, no B-frames so decode order is presentation order).

use super::Tag;
use bytes::Bytes;
use lifeline_hls::FrameKind;

/// NAL units of an Annex B byte stream.
pub(crate) fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1; // trailing zero of a 4-byte start code
        }
        nals.push(&data[s..end]);
    }
    nals
}

fn nal_type(nal: &[u8]) -> u8 {
    (nal[0] >> 1) & 0x3f
}

/// The 12 profile_tier_level bytes of an SPS (after emulation prevention is removed).
fn sps_ptl(sps: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::new();
    let mut zeros = 0;
    for &b in &sps[2..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    rbsp[1..13].to_vec()
}

/// Enhanced RTMP tags for a 30 fps HEVC stream.
pub(crate) fn hevc_tags(data: &[u8], fps: u32) -> Vec<Tag> {
    let nals = nal_units(data);
    let find = |t: u8| {
        *nals
            .iter()
            .find(|n| nal_type(n) == t)
            .expect("parameter set")
    };
    let (vps, sps, pps) = (find(32), find(33), find(34));
    let mut hvcc = vec![1];
    hvcc.extend_from_slice(&sps_ptl(sps));
    hvcc.extend_from_slice(&[0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 3]);
    for (t, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        hvcc.push(0x80 | t);
        hvcc.extend_from_slice(&1u16.to_be_bytes());
        hvcc.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        hvcc.extend_from_slice(nal);
    }
    let mut start = b"\x90hvc1".to_vec();
    start.extend_from_slice(&hvcc);
    let mut tags = vec![Tag {
        kind: FrameKind::Video,
        timestamp: 0,
        body: Bytes::from(start),
    }];
    let mut frame: Vec<u8> = Vec::new();
    let mut key = false;
    let mut n = 0u32;
    let mut flush = |frame: &mut Vec<u8>, key: bool| {
        if frame.is_empty() {
            return;
        }
        let mut body = vec![if key { 0x93 } else { 0xa3 }];
        body.extend_from_slice(b"hvc1");
        body.append(frame);
        tags.push(Tag {
            kind: FrameKind::Video,
            timestamp: n * 1000 / fps,
            body: Bytes::from(body),
        });
        n += 1;
    };
    for nal in nals {
        match nal_type(nal) {
            35 => {
                flush(&mut frame, key);
                key = false;
            }
            // Parameter sets live in the hvcC (an hvc1 sample entry keeps them out of band).
            32..=34 => {}
            t => {
                key |= (16..=23).contains(&t);
                frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                frame.extend_from_slice(nal);
            }
        }
    }
    flush(&mut frame, key);
    tags
}
