//! HEVC: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1), its codecs string
//! (14496-15 Annex E.3) and the picture size from its SPS (H.265 7.3.2.2).

use super::{VideoCodec, VideoConfig};
use crate::bits::{BitReader, Bits, be16, rbsp};
use crate::error::Malformed;
use bytes::Bytes;
use std::fmt::Write;

const WHAT: &str = "HEVCDecoderConfigurationRecord";
const NAL_SPS: u8 = 33;
/// Fixed part of the record before the NAL unit arrays.
const HEADER_LEN: usize = 23;

/// Parses an `hvcC` payload as carried by an HEVC sequence header.
pub(crate) fn parse_hvcc(record: &Bytes) -> Result<VideoConfig, Malformed> {
    let bad = |why| Malformed::new(WHAT, why);
    let head = record.get(..HEADER_LEN).ok_or(bad("truncated"))?;
    if head.first() != Some(&1) {
        return Err(bad("configurationVersion is not 1"));
    }
    let codecs = codecs_string(head);
    let mut at = HEADER_LEN;
    let arrays = *record.get(at - 1).ok_or(bad("truncated"))?;
    let mut sps = None;
    let length_size = (head.get(21).copied().unwrap_or(3) & 3) + 1;
    let mut inband = bytes::BytesMut::new();
    for _ in 0..arrays {
        let kind = record.get(at).ok_or(bad("truncated array"))? & 0x3f;
        let count = be16(record, at + 1).ok_or(bad("truncated array"))?;
        at += 3;
        for _ in 0..count {
            let len = usize::from(be16(record, at).ok_or(bad("truncated NAL unit"))?);
            let nal = record
                .get(at + 2..at + 2 + len)
                .ok_or(bad("truncated NAL unit"))?;
            if kind == NAL_SPS && sps.is_none() {
                sps = Some(nal);
            }
            // VPS, SPS and PPS go in band too; SEI arrays stay in the record.
            if (32..=34).contains(&kind) {
                super::put_nal(&mut inband, length_size, nal);
            }
            at += 2 + len;
        }
    }
    let (width, height) = match sps {
        Some(nal) => parse_sps_size(nal).map_err(|_| Malformed::new("HEVC SPS", "truncated"))??,
        None => return Err(bad("no SPS")),
    };
    Ok(VideoConfig {
        codec: VideoCodec::Hevc,
        width,
        height,
        codecs,
        record: record.clone(),
        inband: inband.freeze(),
    })
}

/// `hvc1.[A-C]?<profile>.<compat reversed, hex>.<L|H><level>[.<constraint byte>]*` from the
/// record's profile_tier_level copy (bytes 1..13).
fn codecs_string(head: &[u8]) -> String {
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    let space = byte(1) >> 6;
    let tier = (byte(1) >> 5) & 1;
    let profile = byte(1) & 0x1f;
    let compat = u32::from_be_bytes([byte(2), byte(3), byte(4), byte(5)]).reverse_bits();
    let mut s = String::from("hvc1.");
    if space > 0 {
        s.push(char::from(b'A' + space - 1));
    }
    let _ = write!(
        s,
        "{profile}.{compat:X}.{}{}",
        if tier == 1 { 'H' } else { 'L' },
        byte(12)
    );
    // The six constraint bytes, trailing zero bytes left out.
    let constraints: Vec<u8> = (6..12).map(byte).collect();
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in constraints.iter().take(used) {
        let _ = write!(s, ".{b:X}");
    }
    s
}

/// Width and height after the conformance window. Outer `Err` = truncated.
fn parse_sps_size(nal: &[u8]) -> Bits<Result<(u32, u32), Malformed>> {
    let bad = |why| Ok(Err(Malformed::new("HEVC SPS", why)));
    let data = rbsp(nal);
    let mut r = BitReader::new(&data);
    r.skip(1)?;
    if r.bits(6)? != u32::from(NAL_SPS) {
        return bad("not an SPS NAL unit");
    }
    r.skip(9)?; // nuh_layer_id, nuh_temporal_id_plus1
    r.skip(4)?; // sps_video_parameter_set_id
    let sub_layers = r.bits(3)?; // sps_max_sub_layers_minus1
    r.skip(1)?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, sub_layers)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma > 3 {
        return bad("chroma_format_idc > 3");
    }
    let separate = chroma == 3 && r.bit()?;
    let w = u64::from(r.ue()?);
    let h = u64::from(r.ue()?);
    let (mut cw, mut ch) = (0u64, 0u64);
    if r.bit()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        cw = u64::from(left) + u64::from(right);
        ch = u64::from(top) + u64::from(bottom);
    }
    // H.265 Table 6-1: SubWidthC / SubHeightC (1 for monochrome or separate planes).
    let (sub_w, sub_h) = match (chroma, separate) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (Some(width), Some(height)) = (w.checked_sub(sub_w * cw), h.checked_sub(sub_h * ch)) else {
        return bad("conformance window larger than the picture");
    };
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w @ 1..=16384), Ok(h @ 1..=16384)) => Ok(Ok((w, h))),
        _ => bad("picture size out of range"),
    }
}

/// H.265 7.3.3 with profilePresentFlag = 1.
fn skip_profile_tier_level(r: &mut BitReader<'_>, sub_layers: u32) -> Bits<()> {
    r.skip(96)?; // general profile (88 bits) + general_level_idc
    let mut present = Vec::new();
    for _ in 0..sub_layers {
        present.push((r.bit()?, r.bit()?));
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            r.skip(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in present {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The first 22 bytes of the `hvcC` ffmpeg 5.1 / x265 3.5 writes for 320x240 Main.
    const HEAD_320X240: [u8; 22] = [
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0xf0, 0x00,
        0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f,
    ];
    pub(crate) const VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09,
    ];
    pub(crate) const SPS_320X240: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];
    const SPS_1280X720: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0,
        0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];
    pub(crate) const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    /// An `hvcC` with one VPS, SPS and PPS array.
    pub(crate) fn record(sps: &[u8]) -> Bytes {
        let mut r = HEAD_320X240.to_vec();
        r.push(3);
        for (kind, nal) in [(32u8, VPS), (33, sps), (34, PPS)] {
            r.push(0x80 | kind);
            r.extend_from_slice(&1u16.to_be_bytes());
            r.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            r.extend_from_slice(nal);
        }
        Bytes::from(r)
    }

    #[test]
    fn x265_records() {
        let cfg = parse_hvcc(&record(SPS_320X240)).unwrap();
        assert_eq!(cfg.codecs, "hvc1.1.6.L60.90");
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(parse_sps_size(SPS_1280X720), Ok(Ok((1280, 720))));
    }

    #[test]
    fn codecs_strings_per_annex_e() {
        // Main 10, high tier, level 5.1, profile space 1, two constraint bytes.
        let mut head = [0u8; 22];
        head[1] = 0b0110_0010; // space 1, tier 1, profile 2
        head[2..6].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        head[6] = 0xb0;
        head[7] = 0x01;
        head[12] = 153;
        assert_eq!(codecs_string(&head), "hvc1.A2.4.H153.B0.1");
    }

    #[test]
    fn hostile_records_are_errors() {
        let good = record(SPS_320X240);
        for cut in [0, 5, 22, 23, 26, 30, good.len() - 1] {
            assert!(parse_hvcc(&good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut no_sps = HEAD_320X240.to_vec();
        no_sps.push(0);
        assert!(parse_hvcc(&Bytes::from(no_sps)).is_err());
    }
}
