//! H.264: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) and just enough of its
//! first SPS (H.264 7.3.2.1.1) to know the picture size after cropping.

use super::{VideoCodec, VideoConfig};
use crate::bits::{BitReader, Bits, be16, rbsp};
use crate::error::Malformed;
use bytes::Bytes;

const WHAT: &str = "AVCDecoderConfigurationRecord";

/// Parses an `avcC` payload as carried by an AVC sequence header.
pub(crate) fn parse_avcc(record: &Bytes) -> Result<VideoConfig, Malformed> {
    let bad = |why| Malformed::new(WHAT, why);
    if record.first() != Some(&1) {
        return Err(bad("configurationVersion is not 1"));
    }
    let length_size = (record.get(4).ok_or(bad("truncated"))? & 3) + 1;
    if length_size == 3 {
        return Err(bad("NAL length size 3"));
    }
    if record.get(5).ok_or(bad("truncated"))? & 0x1f == 0 {
        return Err(bad("no SPS"));
    }
    let sps_len = usize::from(be16(record, 6).ok_or(bad("truncated"))?);
    let sps = record.get(8..8 + sps_len).ok_or(bad("truncated SPS"))?;
    let info = parse_sps(sps).map_err(|_| Malformed::new("H.264 SPS", "truncated"))??;
    let inband = parameter_sets(record, length_size).unwrap_or_default();
    Ok(VideoConfig {
        codec: VideoCodec::Avc,
        width: info.width,
        height: info.height,
        codecs: format!(
            "avc1.{:02x}{:02x}{:02x}",
            info.profile, info.constraints, info.level
        ),
        record: record.clone(),
        inband,
    })
}

/// The record's SPSs and PPSs as length-prefixed NAL units (`None` if truncated).
fn parameter_sets(record: &[u8], length_size: u8) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    let mut at = 5;
    for _ in 0..2 {
        let mask = if at == 5 { 0x1f } else { 0xff };
        let count = record.get(at)? & mask;
        at += 1;
        for _ in 0..count {
            let len = usize::from(be16(record, at)?);
            super::put_nal(&mut out, length_size, record.get(at + 2..at + 2 + len)?);
            at += 2 + len;
        }
    }
    Some(out.freeze())
}

/// What we read from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    pub(crate) profile: u8,
    pub(crate) constraints: u8,
    pub(crate) level: u8,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Parses an SPS NAL unit (with its one-byte header). The outer `Result` is a truncation, the
/// inner one a value the spec does not allow.
pub(crate) fn parse_sps(nal: &[u8]) -> Bits<Result<SpsInfo, Malformed>> {
    let bad = |why| Ok(Err(Malformed::new("H.264 SPS", why)));
    let data = rbsp(nal);
    let mut r = BitReader::new(&data);
    r.skip(1)?; // forbidden_zero_bit
    r.skip(2)?; // nal_ref_idc
    if r.bits(5)? != 7 {
        return bad("not an SPS NAL unit");
    }
    let profile = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return bad("chroma_format_idc > 3");
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return bad("num_ref_frames_in_pic_order_cnt_cycle > 255");
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return bad("pic_order_cnt_type > 2"),
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? {
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    // H.264 7.4.2.1.1: crop units depend on the chroma format (ChromaArrayType).
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_w = width_mbs * 16;
    let full_h = height_map_units * 16 * field_factor;
    let (Some(w), Some(h)) = (
        full_w.checked_sub(crop_x * (left + right)),
        full_h.checked_sub(crop_y * (top + bottom)),
    ) else {
        return bad("cropping larger than the picture");
    };
    let (Ok(width), Ok(height)) = (u32::try_from(w), u32::try_from(h)) else {
        return bad("picture too large");
    };
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return bad("picture size out of range");
    }
    Ok(Ok(SpsInfo {
        profile,
        constraints,
        level,
        width,
        height,
    }))
}

/// H.264 7.3.2.1.1.1: reads past one scaling list.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Bits<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SPS written by ffmpeg 5.1 / x264 for `testsrc=size=320x240`, `-pix_fmt yuv420p`.
    pub(crate) const SPS_320X240: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    /// x264, 1280x720 High profile level 3.1.
    const SPS_1280X720: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    /// x264, 1920x1080 (1088 coded lines, cropped by 8), High level 4.0.
    const SPS_1920X1080: &[u8] = &[
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
    ];

    #[test]
    fn real_sps_sizes_and_profiles() {
        for (sps, w, h, codecs) in [
            (SPS_320X240, 320, 240, "avc1.64000d"),
            (SPS_1280X720, 1280, 720, "avc1.64001f"),
            (SPS_1920X1080, 1920, 1080, "avc1.640028"),
        ] {
            let info = parse_sps(sps).unwrap().unwrap();
            assert_eq!((info.width, info.height), (w, h), "{codecs}");
            let mut record = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
            record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
            record.extend_from_slice(sps);
            record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
            let cfg = parse_avcc(&Bytes::from(record)).unwrap();
            assert_eq!(cfg.codecs, codecs);
            assert_eq!((cfg.width, cfg.height), (w, h));
        }
    }

    #[test]
    fn hostile_records_are_errors() {
        for record in [
            &[][..],
            &[1],
            &[0, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67],
            &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0xff, 0xff, 0x67],
            &[1, 0x64, 0, 0x1f, 0xff, 0xe0],
            &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x64],
            &[
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 5, 0x68, 0x64, 0, 0x1f, 0xac,
            ],
        ] {
            assert!(parse_avcc(&Bytes::copy_from_slice(record)).is_err());
        }
        // An SPS of all ones: huge Exp-Golomb prefixes must not loop or overflow.
        let ones = [
            0x67, 0x64, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(!matches!(parse_sps(&ones), Ok(Ok(_))));
    }
}
