//! AV1: the AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3), its codecs string (AV1-ISOBMFF
//! "Codecs Parameter String", short form) and the maximum frame size from the sequence header
//! OBU it carries (AV1 5.5).

use super::{VideoCodec, VideoConfig};
use crate::bits::{BitReader, Bits};
use crate::error::Malformed;
use bytes::Bytes;

const WHAT: &str = "AV1CodecConfigurationRecord";
const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of a temporal delimiter, which ISOBMFF samples should not carry.
pub(crate) const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// Parses an `av1C` payload as carried by an AV1 SequenceStart.
pub(crate) fn parse_av1c(record: &Bytes) -> Result<VideoConfig, Malformed> {
    let bad = |why| Malformed::new(WHAT, why);
    let head = record.get(..4).ok_or(bad("truncated"))?;
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    if byte(0) != 0x81 {
        return Err(bad("marker/version is not 1/1"));
    }
    let profile = byte(1) >> 5;
    let level = byte(1) & 0x1f;
    let tier = byte(2) >> 7;
    let high_bitdepth = (byte(2) >> 6) & 1;
    let twelve_bit = (byte(2) >> 5) & 1;
    let depth = match (high_bitdepth, twelve_bit, profile) {
        (1, 1, 2) => 12,
        (1, _, _) => 10,
        _ => 8,
    };
    let codecs = format!(
        "av01.{profile}.{level:02}{}.{depth:02}",
        if tier == 1 { 'H' } else { 'M' }
    );
    // The size is only in the sequence header OBU; a record without one is legal.
    let mut obus = record.get(4..).unwrap_or_default();
    let (mut width, mut height) = (0, 0);
    while let Some((kind, payload, rest)) = next_obu(obus) {
        if kind == OBU_SEQUENCE_HEADER {
            let size = max_frame_size(payload)
                .map_err(|_| Malformed::new("AV1 sequence header", "truncated"))?;
            (width, height) = size;
            break;
        }
        obus = rest;
    }
    Ok(VideoConfig {
        inband: Bytes::new(),
        codec: VideoCodec::Av1,
        width,
        height,
        codecs,
        record: record.clone(),
    })
}

/// Splits the first OBU off `data`: (type, payload, rest). An OBU without a size field runs
/// to the end of `data`.
pub(crate) fn next_obu(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let header = *data.first()?;
    let kind = (header >> 3) & 0x0f;
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let mut at = 1 + usize::from(has_extension);
    let len = if has_size {
        let (len, n) = leb128(data.get(at..)?)?;
        at += n;
        usize::try_from(len).ok()?
    } else {
        data.len().checked_sub(at)?
    };
    let end = at.checked_add(len)?;
    Some((kind, data.get(at..end)?, data.get(end..)?))
}

/// AV1 4.10.5: at most 8 bytes; (value, bytes read).
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// AV1 5.5.1 up to max_frame_height_minus_1.
fn max_frame_size(payload: &[u8]) -> Bits<(u32, u32)> {
    let mut r = BitReader::new(payload);
    r.skip(4)?; // seq_profile, still_picture
    if r.bit()? {
        // reduced_still_picture_header
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_len = 0;
        if r.bit()? {
            // timing_info_present_flag
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.bit()? {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info = r.bit()?;
            if decoder_model_info {
                buffer_delay_len = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = r.bit()?;
        let points = r.bits(5)? + 1;
        for _ in 0..points {
            r.skip(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model_info && r.bit()? {
                r.skip(2 * buffer_delay_len + 1)?;
            }
            if initial_display_delay && r.bit()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = u64::from(r.bits(width_bits)?) + 1;
    let height = u64::from(r.bits(height_bits)?) + 1;
    Ok((
        u32::try_from(width).unwrap_or(0),
        u32::try_from(height).unwrap_or(0),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `av1C` ffmpeg 5.1 / libaom writes for 320x240 4:2:0 8-bit.
    pub(crate) const AV1C_320X240: &[u8] = &[
        0x81, 0x00, 0x0c, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9,
        0x00, 0x40,
    ];

    #[test]
    fn libaom_record() {
        let cfg = parse_av1c(&Bytes::from_static(AV1C_320X240)).unwrap();
        assert_eq!(cfg.codecs, "av01.0.00M.08");
        assert_eq!((cfg.width, cfg.height), (320, 240));
    }

    #[test]
    fn codecs_string_fields() {
        // Profile 2, level 13 (5.1), high tier, 12-bit, no config OBUs.
        let cfg = parse_av1c(&Bytes::from_static(&[0x81, 0x4d, 0xe0, 0x00])).unwrap();
        assert_eq!(cfg.codecs, "av01.2.13H.12");
        assert_eq!((cfg.width, cfg.height), (0, 0));
    }

    #[test]
    fn obus_and_hostile_input() {
        assert_eq!(
            next_obu(&[0x12, 0x00, 0xaa]),
            Some((2, &[][..], &[0xaa][..]))
        );
        assert_eq!(next_obu(&[0x12, 0x05, 0xaa]), None);
        assert_eq!(
            next_obu(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert!(parse_av1c(&Bytes::from_static(&[0x81, 0, 0])).is_err());
        assert!(parse_av1c(&Bytes::from_static(&[0x01, 0, 0, 0])).is_err());
        assert!(parse_av1c(&Bytes::from_static(&[0x81, 0, 0x0c, 0, 0x0a, 0x02, 0, 0])).is_err());
    }
}
