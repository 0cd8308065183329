//! Opus: the ID header (RFC 7845 5.1, little-endian) an Enhanced RTMP SequenceStart carries,
//! turned into the `dOps` payload of "Encapsulation of Opus in ISO Base Media File Format"
//! (big-endian, version 0), and packet durations from the TOC byte (RFC 6716 3.1).

use super::{AudioCodec, AudioConfig};
use crate::error::Malformed;
use bytes::{BufMut, BytesMut};

const WHAT: &str = "Opus ID header";

/// Opus always runs at 48 kHz inside MP4, whatever the input rate was.
pub(crate) const OPUS_RATE: u32 = 48000;

/// Parses an OpusHead; an empty payload means the spec's default, stereo mapping family 0.
pub(crate) fn parse_opus_head(head: &[u8]) -> Result<AudioConfig, Malformed> {
    let bad = |why| Malformed::new(WHAT, why);
    let (channels, pre_skip, input_rate, gain, family, mapping) = if head.is_empty() {
        (2u8, 0u16, OPUS_RATE, 0i16, 0u8, &[][..])
    } else {
        if head.get(..8) != Some(b"OpusHead") {
            return Err(bad("no OpusHead magic"));
        }
        let b = |i: usize| head.get(i).copied().ok_or(bad("truncated"));
        if b(8)? & 0xf0 != 0 {
            return Err(bad("unknown major version"));
        }
        let channels = b(9)?;
        let pre_skip = u16::from_le_bytes([b(10)?, b(11)?]);
        let input_rate = u32::from_le_bytes([b(12)?, b(13)?, b(14)?, b(15)?]);
        let gain = i16::from_le_bytes([b(16)?, b(17)?]);
        let family = b(18)?;
        let mapping = if family == 0 {
            if channels > 2 {
                return Err(bad("mapping family 0 with more than two channels"));
            }
            &[][..]
        } else {
            // stream count, coupled count, one mapping byte per channel
            head.get(19..21 + usize::from(channels))
                .ok_or(bad("truncated channel mapping"))?
        };
        (channels, pre_skip, input_rate, gain, family, mapping)
    };
    if channels == 0 {
        return Err(bad("zero channels"));
    }
    let mut dops = BytesMut::with_capacity(11 + mapping.len());
    dops.put_u8(0); // Version
    dops.put_u8(channels);
    dops.put_u16(pre_skip);
    dops.put_u32(input_rate);
    dops.put_i16(gain);
    dops.put_u8(family);
    dops.put_slice(mapping);
    Ok(AudioConfig {
        codec: AudioCodec::Opus,
        sample_rate: OPUS_RATE,
        channels: channels.into(),
        codecs: "opus".into(),
        frame_samples: 0,
        specific: dops.freeze(),
    })
}

/// Samples (at 48 kHz) in one Opus packet, from its TOC byte and frame count.
pub(crate) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration (RFC 6716 Table 2).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let samples = frame * frames;
    // RFC 6716 3.2.5: at most 120 ms per packet.
    (1..=5760).contains(&samples).then_some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_header_to_dops() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        let cfg = parse_opus_head(&head).unwrap();
        assert_eq!((cfg.sample_rate, cfg.channels), (48000, 2));
        assert_eq!(
            &cfg.specific[..],
            &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]
        );
        assert_eq!(parse_opus_head(&[]).unwrap().channels, 2);
        assert!(parse_opus_head(b"OpusHead\x01").is_err());
        assert!(parse_opus_head(b"OpusTags\x01\x02\x38\x01\x80\xbb\0\0\0\0\0").is_err());
        let mut surround = head.clone();
        surround[9] = 6;
        surround[18] = 1;
        assert!(parse_opus_head(&surround).is_err(), "mapping table missing");
        surround.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        assert_eq!(parse_opus_head(&surround).unwrap().specific.len(), 19);
    }

    #[test]
    fn packet_durations() {
        assert_eq!(opus_packet_samples(&[0xfc]), Some(960)); // CELT 20 ms, one frame
        assert_eq!(opus_packet_samples(&[0x08 | 1]), Some(1920)); // SILK 20 ms, two frames
        assert_eq!(opus_packet_samples(&[0x03 | (16 << 3), 0x04]), Some(480)); // 4 x 2.5 ms
        assert_eq!(opus_packet_samples(&[0x1b, 0x3f]), None); // 63 x 60 ms is too long
        assert_eq!(opus_packet_samples(&[]), None);
    }
}
