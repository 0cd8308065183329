//! Decoder configuration from sequence headers: what the init segment's sample entries carry,
//! and what a multivariant playlist advertises (RFC 6381 `CODECS`, `RESOLUTION`).
//!
//! The parsers are written here rather than taken from a crate: we read a dozen fields per
//! codec, the H.264/HEVC/AV1 readers share one 100-line bit reader, and the candidates
//! (`h264-reader` for AVC only, `mp4-atom` for boxes) would bring five to ten crates for it.

mod aac;
mod av1;
mod avc;
mod hevc;
mod opus;

pub(crate) use aac::{AscError, parse_audio_specific_config};
pub(crate) use av1::{OBU_TEMPORAL_DELIMITER, next_obu, parse_av1c};
pub(crate) use avc::parse_avcc;
pub(crate) use hevc::parse_hvcc;
pub(crate) use opus::{opus_packet_samples, parse_opus_head};

use bytes::Bytes;

/// The video codecs we package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 (`avc1` sample entry with `avcC`).
    Avc,
    /// H.265 (`hvc1` sample entry with `hvcC`).
    Hevc,
    /// AV1 (`av01` sample entry with `av1C`).
    Av1,
}

/// A video track's decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Which codec.
    pub codec: VideoCodec,
    /// Display width in pixels (after cropping); 0 when the record does not say.
    pub width: u32,
    /// Display height in pixels; 0 when the record does not say.
    pub height: u32,
    /// RFC 6381 codecs string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.04M.08`.
    pub codecs: String,
    /// The configuration record as sent (`avcC` / `hvcC` / `av1C` box payload).
    pub record: Bytes,
    /// The record's parameter sets (VPS/SPS/PPS) as length-prefixed NAL units, put in front of
    /// every keyframe as well: a player that ignores a new init segment after a publisher
    /// change (ffmpeg's HLS demuxer does) still switches decoders. Empty for AV1.
    pub inband: Bytes,
}

/// Writes `nal` as a length-prefixed NAL unit (`length_size` bytes, big-endian).
pub(crate) fn put_nal(out: &mut bytes::BytesMut, length_size: u8, nal: &[u8]) {
    let len = nal.len() as u64;
    for i in (0..u32::from(length_size)).rev() {
        out.extend_from_slice(&[(len >> (8 * i)) as u8]);
    }
    out.extend_from_slice(nal);
}

/// The audio codecs we package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// MPEG-4 AAC (`mp4a` sample entry with `esds`).
    Aac,
    /// Opus (`Opus` sample entry with `dOps`).
    Opus,
}

/// An audio track's decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Which codec.
    pub codec: AudioCodec,
    /// Sample rate, which is also the track's timescale.
    pub sample_rate: u32,
    /// Output channels.
    pub channels: u16,
    /// RFC 6381 codecs string, e.g. `mp4a.40.2`, `opus`.
    pub codecs: String,
    /// Samples per AAC frame (1024 or 960); 0 for Opus, whose packets say it themselves.
    pub frame_samples: u32,
    /// AAC: the AudioSpecificConfig; Opus: the `dOps` box payload.
    pub specific: Bytes,
}

impl AudioConfig {
    /// Samples in one coded frame, or `None` when only the message timestamps can tell.
    pub(crate) fn samples_in(&self, frame: &[u8]) -> Option<u32> {
        match self.codec {
            AudioCodec::Aac => Some(self.frame_samples),
            AudioCodec::Opus => opus_packet_samples(frame),
        }
    }
}

/// An `avcC` for 320x240 High profile built around a real x264 SPS, for tests.
#[cfg(test)]
pub(crate) fn avc_test_record() -> Bytes {
    let sps = avc::tests::SPS_320X240;
    let mut record = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    record.extend_from_slice(sps);
    record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
    Bytes::from(record)
}

/// An `hvcC` for 320x240 Main built around real x265 parameter sets, for tests.
#[cfg(test)]
pub(crate) fn hevc_test_record() -> Bytes {
    hevc::tests::record(hevc::tests::SPS_320X240)
}
